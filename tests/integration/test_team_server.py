"""Team mode through `mlrig server` (MLflow's tracking server): PostgreSQL or MariaDB behind it,
artifacts proxied to S3 (rclone serve s3), clients holding no storage credentials; basic auth,
allowed Host headers, and a tracking server lost in the middle of a training run."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from tests.conftest import MLRIG, Server, TrackingServer, run_cli, wine_frame
from tests.services import MariaDb, S3Store, free_port, fresh_database

pytestmark = pytest.mark.slow
MODEL = "wine-quality"
BUCKET = "mlflow"
PG_PASSWORD = "Pg-r0le-Secret-41"
ADMIN_PASSWORD = "Adm1n-Team-Secret-77"
SEARCH = "/api/2.0/mlflow/experiments/search?max_results=1"


def role_database(server_url: str, name: str, role: str, password: str) -> str:
    """A fresh database owned by a login role with a password; its URL with that password."""
    url = fresh_database(server_url, name)
    admin = sa.create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        exists = conn.exec_driver_sql(f"SELECT 1 FROM pg_roles WHERE rolname = '{role}'").first()
        if exists is None:
            conn.exec_driver_sql(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'")
        conn.exec_driver_sql(f'ALTER DATABASE "{name}" OWNER TO {role}')
    admin.dispose()
    return url.replace("://postgres@", f"://{role}:{password}@")


@pytest.fixture(autouse=True)
def _client_holds_no_storage_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith(("AWS_", "MLFLOW_S3_", "MLFLOW_TRACKING_")):
            monkeypatch.delenv(name)


@pytest.fixture(scope="module")
def pg_server(
    postgres_url: str, s3_store: S3Store, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TrackingServer]:
    """`mlrig server` on PostgreSQL (a role with a password) with S3 artifacts, started the
    way deploy/ starts it (backend URL from the environment, compose service name allowed)."""
    s3_store.bucket(BUCKET)
    url = role_database(postgres_url, "team_server", "mlrig_team", PG_PASSWORD)
    server = TrackingServer(
        tmp_path_factory.mktemp("team-pg") / ".mlrig",
        env={"MLFLOW_BACKEND_STORE_URI": url, **s3_store.env},
        args=("--artifacts-destination", f"s3://{BUCKET}/artifacts",
              "--allowed-hosts", "mlflow,mlflow:5000,localhost"),
    )  # fmt: skip
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def maria_server(
    mariadb: MariaDb, s3_store: S3Store, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TrackingServer]:
    """`mlrig server --auth` on MariaDB with S3 artifacts, no extra allowed host."""
    s3_store.bucket(BUCKET)
    server = TrackingServer(
        tmp_path_factory.mktemp("team-maria") / ".mlrig",
        env={
            "MLFLOW_BACKEND_STORE_URI": mariadb.database("team_server"),
            "MLRIG_SERVER_ADMIN_PASSWORD": ADMIN_PASSWORD,
            **s3_store.env,
        },
        args=("--auth", "--artifacts-destination", f"s3://{BUCKET}/maria"),
    )
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


def _json(*args: str, env: dict[str, str], code: int = 0) -> dict[str, Any]:
    done = run_cli(*args, "--json", env=env, timeout=300)
    assert done.returncode == code and done.stdout, done.stderr[-3000:]
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def _traffic(url: str, colour: str, n: int, seed: int) -> list[str]:
    """``n`` wine rows of ``colour`` through /predict with ids, then their feedback; the ids."""
    rows = wine_frame(colour).sample(n, random_state=seed)
    ids: list[str] = []
    with httpx.Client(timeout=60) as client:
        for start in range(0, n, 100):
            chunk = rows.iloc[start : start + 100]
            body = [
                {"id": f"{colour}-{seed}-{start + i}", **r}
                for i, r in enumerate(chunk.drop(columns="quality").to_dict("records"))
            ]
            answer = client.post(f"{url}/predict", json=body)
            assert answer.status_code == 200, answer.text
            got = [p["id"] for p in answer.json()["predictions"]]
            assert got == [b["id"] for b in body]
            feedback = [
                {"id": i, "actual": float(a)} for i, a in zip(got, chunk["quality"], strict=True)
            ]
            fed = client.post(f"{url}/feedback", json=feedback)
            assert fed.status_code == 200, fed.text
            ids += got
    return ids


def _mlflow(uri: str) -> Any:
    from mlflow import MlflowClient

    return MlflowClient(uri, uri)


def _bucket_keys(s3_store: S3Store, prefix: str) -> list[str]:
    s3: Any = s3_store.client()
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
    return [o["Key"] for page in pages for o in page.get("Contents", [])]


def test_postgres_s3_chain_run_serve_feedback_monitor_loop_without_storage_credentials(
    pg_server: TrackingServer, s3_store: S3Store, tmp_path: Path
) -> None:
    env = {"MLFLOW_TRACKING_URI": pg_server.uri}
    home = tmp_path / ".mlrig"
    first = run_cli("run", "--home", str(home), "--quiet", env=env, timeout=300)
    assert first.returncode == 0, first.stderr[-3000:]
    serve = Server(home, env=env)
    try:
        serve.wait_ready()
        _traffic(serve.url, "red", 400, seed=2)
        _traffic(serve.url, "white", 900, seed=1)
    finally:
        serve.stop()
    # exit 1: white wine drifted; the monitoring run and its report went through the server
    monitored = _json("monitor", "--home", str(home), env=env, code=1)
    assert monitored["mlflow_run_id"], monitored
    looped = _json("loop", "--home", str(home), env=env)
    assert looped["retrain"] and looped["outcome"] == "promoted", looped
    assert looped["version"] == "2"

    client = _mlflow(pg_server.uri)
    for name in ("mlrig", f"{MODEL}-monitoring", f"{MODEL}-loop"):
        location = client.get_experiment_by_name(name).artifact_location
        assert location.startswith("mlflow-artifacts:"), (name, location)  # proxied
    assert client.get_model_version_by_alias(MODEL, "champion").version == "2"
    # both versions' model files are in the bucket, read back through the S3 API
    s3: Any = s3_store.client()
    keys = _bucket_keys(s3_store, "artifacts/")
    for version in ("1", "2"):
        mv = client.get_model_version(MODEL, version)
        run_id, model_id = mv.run_id, mv.source.rsplit("/", 1)[-1]  # models:/<model id>
        mlmodel = [k for k in keys if model_id in k and k.endswith("/MLmodel")]
        assert mlmodel, (version, keys[:20])
        body = s3.get_object(Bucket=BUCKET, Key=mlmodel[0])["Body"].read().decode()
        assert "flavors:" in body and run_id in body
    # nothing of MLflow's was written next to the client
    assert not (home / "artifacts").exists() and not (home / "mlflow.db").exists()


def test_mariadb_with_auth_run_serve_predict_loop_and_a_clear_error_without_credentials(
    maria_server: TrackingServer, s3_store: S3Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    uri = maria_server.uri
    env = {
        "MLFLOW_TRACKING_URI": uri,
        "MLFLOW_TRACKING_USERNAME": "admin",
        "MLFLOW_TRACKING_PASSWORD": ADMIN_PASSWORD,
    }
    home = tmp_path / ".mlrig"
    first = run_cli("run", "--home", str(home), "--quiet", env=env, timeout=300)
    assert first.returncode == 0, first.stderr[-3000:]
    serve = Server(home, env=env)
    try:
        serve.wait_ready()
        _traffic(serve.url, "red", 300, seed=5)
    finally:
        serve.stop()
    looped = _json("loop", "--home", str(home), env=env)
    assert looped["outcome"] == "no_retrain", looped
    for creds, said in (({}, "requires authentication"), (
        {"MLFLOW_TRACKING_USERNAME": "admin", "MLFLOW_TRACKING_PASSWORD": "wrong-Passw0rd-1"},
        "refused the credentials",
    )):  # fmt: skip
        refused = run_cli("run", "--home", str(home), "--quiet",
                          env={"MLFLOW_TRACKING_URI": uri, **creds})  # fmt: skip
        assert refused.returncode == 4, refused.stderr
        assert f"tracking store {uri}: HTTP 401: the server {said}" in refused.stderr
        assert "set MLFLOW_TRACKING_USERNAME/PASSWORD" in refused.stderr
        assert "Traceback" not in refused.stderr and ADMIN_PASSWORD not in refused.stderr

    for name in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        monkeypatch.setenv(name, env[name])  # MLflow's client reads them from the environment
    run_id = _mlflow(uri).get_model_version(MODEL, "1").run_id
    assert any(run_id in k for k in _bucket_keys(s3_store, "maria/"))


def test_auth_refuses_to_start_without_an_admin_password_or_with_the_public_default(
    tmp_path: Path,
) -> None:
    common = ("server", "--auth", "--home", str(tmp_path / "h"), "--port", str(free_port()))
    missing = run_cli(*common)
    assert missing.returncode == 2 and "set MLRIG_SERVER_ADMIN_PASSWORD" in missing.stderr
    public = run_cli(*common, env={"MLRIG_SERVER_ADMIN_PASSWORD": "password1234"})
    assert public.returncode == 2 and "public default" in public.stderr
    assert "password1234" not in public.stderr
    workers = run_cli(*common, "--workers", "2", env={"MLRIG_SERVER_ADMIN_PASSWORD": "Ok-pw-123"})
    assert workers.returncode == 2 and "MLFLOW_FLASK_SERVER_SECRET_KEY" in workers.stderr


def test_a_service_host_header_needs_allowed_hosts(
    pg_server: TrackingServer, maria_server: TrackingServer
) -> None:
    headers = {"Host": "mlflow:5000"}
    refused = httpx.get(maria_server.uri + SEARCH, headers=headers)
    assert refused.status_code == 403 and "Host header" in refused.text
    accepted = httpx.get(pg_server.uri + SEARCH, headers=headers)
    assert accepted.status_code == 200, accepted.text


def test_an_unreachable_backend_fails_with_exit_4_naming_it_without_its_password(
    tmp_path: Path,
) -> None:
    port = free_port()
    backend = f"postgresql+psycopg://mlrig:{PG_PASSWORD}@127.0.0.1:{port}/mlflow"
    done = run_cli("server", "--home", str(tmp_path / "h"), "--port", str(free_port()),
                   env={"MLFLOW_BACKEND_STORE_URI": backend})  # fmt: skip
    assert done.returncode == 4, done.stderr
    assert f"backend store postgresql+psycopg://mlrig:***@127.0.0.1:{port}/mlflow" in done.stderr
    assert PG_PASSWORD not in done.stderr + done.stdout


def test_tracking_server_lost_during_training_fails_clearly_and_registers_nothing_half(
    tmp_path: Path,
) -> None:
    server = TrackingServer(tmp_path / "server" / ".mlrig")
    try:
        server.wait_ready()
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("MLRIG_")},
            "MLFLOW_TRACKING_URI": server.uri,
        }
        client = _mlflow(server.uri)
        training = subprocess.Popen(
            [MLRIG, "run", "--home", str(tmp_path / ".mlrig"), "--quiet"],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            start_new_session=True,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and training.poll() is None:
                experiment = client.get_experiment_by_name("mlrig")
                if experiment and client.search_runs([experiment.experiment_id]):
                    break
                time.sleep(0.2)
            assert training.poll() is None, training.communicate()
            server.stop()
            err = training.communicate(timeout=240)[1]
        finally:
            if training.poll() is None:
                os.killpg(training.pid, 9)
        assert training.returncode not in (0, None)
        assert server.uri in err, err[-3000:]
        assert "Traceback" not in err, err[-3000:]

        server.restart()
        client = _mlflow(server.uri)
        from mlflow.exceptions import MlflowException

        try:
            versions = client.search_model_versions(f"name = '{MODEL}'")
        except MlflowException:
            versions = []
        assert all(v.tags.get("mlrig.record") != "complete" for v in versions), versions
        with pytest.raises(MlflowException):
            client.get_model_version_by_alias(MODEL, "champion")
    finally:
        server.stop()
