"""The usual production shape: the registry is a real `mlflow server` (over the SQLite store
`mlrig run` wrote), stopped while the model serves."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlrig.config import load_settings
from mlrig.serving.startup import open_follower
from tests.conftest import BIN, free_port, wait_http
from tests.integration.test_follower_faults import Served

pytestmark = pytest.mark.slow  # an `mlflow server` start-up


class MlflowServer:
    """A real `mlflow server` process on 127.0.0.1 that a test can stop."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
        env.pop("MLFLOW_TRACKING_URI", None)
        self.log = (self.home.parent / f"mlflow-{self.port}.log").open("a")
        self.proc = subprocess.Popen(
            [
                str(BIN / "mlflow"),
                "server",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--workers",
                "1",
                "--backend-store-uri",
                f"sqlite:///{self.home / 'mlflow.db'}",
            ],
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_http(
            f"{self.url}/health", self.proc, 120, lambda: Path(self.log.name).read_text()[-2000:]
        )

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, 15)
            self.proc.wait(timeout=30)
        self.proc = None
        self.log.close()


@pytest.fixture
def mlflow_server(trained_home: Path) -> Iterator[MlflowServer]:
    server = MlflowServer(trained_home)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_serving_outlives_a_stopped_mlflow_server(
    mlflow_server: MlflowServer, trained_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server.url)
    settings = load_settings(overrides={"home": trained_home, "serving": {"poll_interval": 0}})
    follower = open_follower(settings)
    assert follower.source == "registry" and follower.current is not None
    served = Served(settings, follower)
    with served.http:
        mlflow_server.stop()
        assert served.poll(1.0) == 2.0
        assert served.predict_version() == "1"
        registry = served.checks()["registry"]
        assert registry["status"] == "unreachable"
        assert f"127.0.0.1:{mlflow_server.port}" in registry["last_error"]
        assert served.metric("mlrig_registry_poll_failures_total") == 1
        assert served.metric("mlrig_registry_up") == 0
        assert follower.load_attempts == 1  # recovery is test_follower_faults' (same code path)
