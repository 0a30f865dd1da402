"""Passwords in every URL of a team setup — the PostgreSQL role's, the S3 secret, the MLflow
admin's — appear nowhere: not in `mlrig server`'s output, the clients' output, MLflow params or
tags, nor any process's arguments (`ps -eo args`) while everything runs."""

from __future__ import annotations

import stat
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import Server, TrackingServer, run_cli
from tests.integration.test_team_server import (  # the autouse fixture applies here too
    BUCKET,
    MODEL,
    _client_holds_no_storage_credentials,  # noqa: F401
    role_database,
)
from tests.services import S3Store

pytestmark = pytest.mark.slow
PG_PASSWORD = "Pg-Secrets-r0le-93"
ADMIN_PASSWORD = "Adm1n-Secrets-58x"


class _ArgsWatch:
    """Every process's command line, sampled every 0.2 s until stopped."""

    def __init__(self) -> None:
        self.seen: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            out = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
            self.seen.update(out.splitlines())

    def stop(self) -> set[str]:
        self._stop.set()
        self._thread.join()
        return self.seen


@pytest.fixture(scope="module")
def secret_server(
    postgres_url: str, s3_store: S3Store, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TrackingServer]:
    s3_store.bucket(BUCKET)
    url = role_database(postgres_url, "team_secrets", "mlrig_secrets", PG_PASSWORD)
    server = TrackingServer(
        tmp_path_factory.mktemp("team-secrets") / ".mlrig",
        env={
            "MLFLOW_BACKEND_STORE_URI": url,
            "MLRIG_SERVER_ADMIN_PASSWORD": ADMIN_PASSWORD,
            **s3_store.env,
        },
        args=("--auth", "--artifacts-destination", f"s3://{BUCKET}/secrets"),
    )
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


def test_no_password_in_outputs_mlflow_records_or_process_arguments(
    secret_server: TrackingServer,
    s3_store: S3Store,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    secrets = (PG_PASSWORD, s3_store.secret, ADMIN_PASSWORD)
    env = {
        "MLFLOW_TRACKING_URI": secret_server.uri,
        "MLFLOW_TRACKING_USERNAME": "admin",
        "MLFLOW_TRACKING_PASSWORD": ADMIN_PASSWORD,
    }
    home = tmp_path / ".mlrig"
    watch = _ArgsWatch()
    outputs: list[str] = []
    try:
        for args in (("run", "--json"), ("models", "list")):
            done = run_cli(*args, "--home", str(home), env=env, timeout=300)
            assert done.returncode == 0, done.stderr[-3000:]
            outputs += [done.stdout, done.stderr]
        serve = Server(home, env=env)
        try:
            serve.wait_ready()
            answer = httpx.post(f"{serve.url}/predict", json=[_row()])
            assert answer.status_code == 200, answer.text
            outputs.append(answer.text)
        finally:
            serve.stop()
            outputs.append(Path(serve.log.name).read_text())
        refused = run_cli("run", "--home", str(home), "--quiet",
                          env={**env, "MLFLOW_TRACKING_PASSWORD": "not-" + ADMIN_PASSWORD})  # fmt: skip
        assert refused.returncode == 4
        outputs += [refused.stdout, refused.stderr]
    finally:
        seen = watch.stop()
    # the server's own output (MLflow's logs included), every client's
    outputs.append(secret_server.output())
    for secret in secrets:
        assert not [o for o in outputs if secret in o], secret
    # rclone (the test's stand-in for MinIO) takes its key on its command line by design
    ours = [line for line in seen if "rclone" not in line]
    assert any("mlflow server" in line or "uvicorn" in line for line in ours)
    assert any(" serve " in line for line in ours), "no mlrig serve sampled"
    for secret in secrets:
        assert not [line for line in ours if secret in line], secret

    # MLflow's records: every run's params and tags, every version's tags
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    from mlflow import MlflowClient

    client = MlflowClient(secret_server.uri, secret_server.uri)
    experiments = client.search_experiments()
    runs = client.search_runs([e.experiment_id for e in experiments])
    assert runs
    records: list[Any] = [r.data.params for r in runs] + [r.data.tags for r in runs]
    records += [v.tags for v in client.search_model_versions(f"name = '{MODEL}'")]
    records += [e.tags for e in experiments]
    text = repr(records)
    for secret in secrets:
        assert secret not in text, secret
    # the auth config holds the admin and database passwords: its owner alone reads it
    config = secret_server.home / "basic_auth.ini"
    assert stat.S_IMODE(config.stat().st_mode) == 0o600


def _row() -> dict[str, float]:
    from tests.conftest import WINE_ROW

    return dict(WINE_ROW)
