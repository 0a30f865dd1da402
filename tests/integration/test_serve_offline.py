"""`mlrig serve` as a user runs it, with the registry out of reach: it starts from the local copy
of the last champion (and says so), or serves a model URI without the registry at all."""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx
import pytest

from mlrig.config import load_settings
from mlrig.serving.startup import open_follower
from tests.conftest import WINE_ROW, Server, free_port, run_cli

pytestmark = pytest.mark.slow  # two real server processes

_OFFLINE = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",  # fail at once instead of MLflow's ≈2 min retries
    "MLRIG_SERVING__REGISTRY_TIMEOUT": "20",
}


def _unreachable() -> str:
    return f"http://127.0.0.1:{free_port()}"  # bound, then released: nothing listens there


def test_serve_starts_from_the_last_champion_when_the_registry_is_unreachable(
    trained_home: Path,
) -> None:
    open_follower(load_settings(overrides={"home": trained_home}))  # an earlier serve kept a copy
    srv = Server(trained_home, env={**_OFFLINE, "MLFLOW_TRACKING_URI": _unreachable()})
    try:
        srv.wait_ready()
        r = httpx.post(f"{srv.url}/predict", json=WINE_ROW)
        assert r.status_code == 200 and r.json()["predictions"][0]["version"] == "1"
        checks = httpx.get(f"{srv.url}/ready").json()["checks"]
        assert checks["model"]["source"] == "cache"
        assert checks["registry"]["status"] == "unreachable"
        assert "local copy of version 1" in srv.output()  # the warning a person sees
    finally:
        srv.stop()


def test_serve_without_a_copy_and_without_the_registry_fails_clearly(trained_home: Path) -> None:
    done = run_cli(
        "serve",
        "--home",
        str(trained_home),
        "--port",
        str(free_port()),
        env={**_OFFLINE, "MLFLOW_TRACKING_URI": _unreachable()},
        timeout=120,
    )
    assert done.returncode == 4, done.stdout + done.stderr
    assert "cannot connect" in done.stderr and "Traceback" not in done.stderr


def test_serve_a_model_uri_without_the_registry(trained_home: Path, tmp_path: Path) -> None:
    from mlflow import MlflowClient

    uri = f"sqlite:///{trained_home / 'mlflow.db'}"
    files = MlflowClient(uri, uri).get_model_version_download_uri("wine-quality", "1")
    model_dir = shutil.copytree(files.removeprefix("file://"), tmp_path / "exported-model")
    srv = Server(
        trained_home,
        env={**_OFFLINE, "MLFLOW_TRACKING_URI": _unreachable()},
        args=("--model-uri", str(model_dir), "--poll-interval", "0.2"),
    )
    try:
        srv.wait_ready()
        r = httpx.post(f"{srv.url}/predict", json=WINE_ROW)
        assert r.status_code == 200, r.text
        assert r.json()["predictions"][0]["version"] == str(model_dir)
        checks = httpx.get(f"{srv.url}/ready").json()["checks"]
        assert checks["registry"]["status"] == "not used"
        assert checks["model"]["source"] == "uri"
        metrics = httpx.get(f"{srv.url}/metrics").text
        assert "mlrig_registry_poll_failures_total 0.0" in metrics  # never polled
    finally:
        srv.stop()
