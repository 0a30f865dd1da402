"""`mlrig doctor` against real backends: all local → OK; an unreachable PostgreSQL fails in
seconds with its fix; passwords in every URL and secret variable never shown (output, JSON,
stderr, `ps`); a live Prefect server with a polling process worker."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.conftest import MLRIG, run_cli
from tests.services import PrefectWorker, free_port, fresh_database

if TYPE_CHECKING:
    from tests.services import S3Store


def _checks(stdout: str) -> dict[str, dict[str, Any]]:
    return {c["backend"]: c for c in json.loads(stdout)["checks"]}


def test_local_defaults_are_all_ok(tmp_path: Path) -> None:
    started = time.monotonic()
    done = run_cli("doctor", "--home", str(tmp_path / "h"))
    took = time.monotonic() - started
    assert done.returncode == 0, done.stdout + done.stderr
    assert "every configured backend is reachable" in done.stdout
    as_json = run_cli("doctor", "--json", "--home", str(tmp_path / "h"))
    assert as_json.returncode == 0, as_json.stderr
    checks = _checks(as_json.stdout)
    assert set(checks) == {"tracking", "registry", "artifacts", "predictions", "optuna", "prefect"}
    assert {c["status"] for c in checks.values()} == {"ok"}
    assert str(tmp_path / "h" / "artifacts") in checks["artifacts"]["detail"]
    assert "PREFECT_API_URL unset" in checks["prefect"]["detail"]
    assert not (tmp_path / "h").exists()  # the doctor creates nothing
    assert took < 20, f"doctor took {took:.1f} s with every store local"


def test_unreachable_postgresql_fails_in_seconds_with_its_fix(tmp_path: Path) -> None:
    url = f"postgresql+psycopg://mlrig@127.0.0.1:{free_port()}/predictions"
    started = time.monotonic()
    done = run_cli(
        "doctor", "--json", "--home", str(tmp_path / "h"), env={"MLRIG_PREDICTIONS_URL": url}
    )
    took = time.monotonic() - started
    assert done.returncode == 4, done.stdout + done.stderr
    checks = _checks(done.stdout)
    assert checks["predictions"]["status"] == "fail"
    assert "cannot connect" in checks["predictions"]["detail"]
    assert "MLRIG_PREDICTIONS_URL" in checks["predictions"]["fix"]
    assert "MLRIG_PREDICTIONS_URL" in checks["predictions"]["configured"]  # where it came from
    assert checks["tracking"]["status"] == "ok"  # the others are unaffected
    assert took < 15, f"doctor took {took:.1f} s to fail"
    text = run_cli("doctor", "--home", str(tmp_path / "h"), env={"MLRIG_PREDICTIONS_URL": url})
    assert text.returncode == 4
    assert "FAIL  predictions" in text.stdout and "fix: start the database server" in text.stdout


def test_no_password_is_ever_shown(tmp_path: Path, postgres_url: str, prefect_api: str) -> None:
    host = postgres_url.split("@", 1)[1].split("/", 1)[0]
    tracking = fresh_database(postgres_url, "doctor_tracking").replace(
        "postgres@", "postgres:SECRET1@"
    )
    closed = f"127.0.0.1:{free_port()}"
    env = {
        "MLFLOW_TRACKING_URI": tracking,  # reachable (trust auth ignores the password)
        "MLFLOW_REGISTRY_URI": f"postgresql+psycopg://u:SECRET2@{closed}/registry",
        "MLRIG_PREDICTIONS_URL": f"postgresql+psycopg://postgres:SECRET3@{host}/no_such_db",
        "MLRIG_TUNE__STORAGE": f"mysql+pymysql://u:SECRET4@{closed}/optuna",
        "PREFECT_API_URL": prefect_api.replace("http://", "http://u:SECRET5@"),
        "MLFLOW_TRACKING_PASSWORD": "SECRET6",
        "MLFLOW_TRACKING_USERNAME": "u",
        "AWS_ACCESS_KEY_ID": "mlrig",
        "AWS_SECRET_ACCESS_KEY": "SECRET7",
    }
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("MLRIG_", "MLFLOW_"))}
    for args in ((), ("--json",)):
        proc = subprocess.Popen(
            [MLRIG, "doctor", "--home", str(tmp_path / "h"), *args],
            env={**full_env, **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        ps = ""
        while proc.poll() is None:  # what anyone on the machine sees while it runs
            ps += subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
            time.sleep(0.2)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 4, out + err  # registry, predictions and optuna fail
        assert "SECRET" not in out + err + ps
        assert "postgres:***@" in out and "u:***@" in out
    checks = _checks(out)
    assert checks["tracking"]["status"] == "ok"
    assert checks["prefect"]["status"] == "ok"
    assert checks["predictions"]["status"] == "fail"
    assert "does not exist" in checks["predictions"]["detail"]
    assert "create the database" in checks["predictions"]["fix"]


@pytest.mark.slow
def test_pools_of_mlrig_deployments_and_their_workers(prefect_api: str, tmp_path: Path) -> None:
    env = {"PREFECT_API_URL": prefect_api}
    home = str(tmp_path / "h")
    doctor = ("doctor", "--json", "--home", home)
    missing = run_cli(*doctor, "--pool", "doctor-pool", env=env)
    assert missing.returncode == 4, missing.stdout + missing.stderr
    pool = _checks(missing.stdout)["pool doctor-pool"]
    assert pool["status"] == "fail" and "prefect work-pool create doctor-pool" in pool["fix"]

    # A deployment on the pool (which `mlrig schedule` creates): found without --pool.
    nightly = ("--cron", "0 3 * * *", "--name", "doctor-nightly", "--pool", "doctor-pool")
    deployed = run_cli("schedule", *nightly, "--home", home, env=env)
    assert deployed.returncode == 0, deployed.stderr
    worker = None
    try:
        idle = run_cli(*doctor, env=env)
        assert idle.returncode == 4
        pool = _checks(idle.stdout)["pool doctor-pool"]
        assert pool["configured"] == "deployments: doctor-nightly"
        assert pool["status"] == "fail" and "no worker is polling" in pool["detail"]
        assert "prefect worker start --pool doctor-pool --type process" in pool["fix"]

        worker = PrefectWorker(prefect_api, "doctor-pool", tmp_path / "worker")
        deadline = time.monotonic() + 90
        while True:
            seen = run_cli(*doctor, env=env)
            pool = _checks(seen.stdout)["pool doctor-pool"]
            # (the exit code also reflects the other tests' pools on this shared server)
            if pool["status"] == "ok" or time.monotonic() > deadline:
                break
            assert worker.proc.poll() is None, worker.output()
            time.sleep(2)
        assert pool["status"] == "ok", seen.stdout + worker.output()
        assert "type process; 1 worker(s) polling" in pool["detail"]
        assert "heartbeat" in pool["detail"]
    finally:
        if worker is not None:
            worker.stop()
        stopped = run_cli("schedule", "stop", "doctor-nightly", env=env)
    assert stopped.returncode == 0, stopped.stderr


ADMIN_PASSWORD = "admin-pw-4c1e9"


@pytest.mark.slow
def test_artifacts_proxied_by_an_mlflow_server_or_direct_on_s3(
    tmp_path: Path, s3_store: S3Store
) -> None:
    """One real MLflow server with basic auth: wrong credentials are said (never shown), its
    proxied default, and an experiment created with an s3:// location (clients then write to
    S3 directly and need credentials)."""
    import httpx

    from tests.conftest import BIN, wait_http

    port = free_port()
    auth_ini = tmp_path / "auth.ini"
    auth_ini.write_text(
        "[mlflow]\ndefault_permission = READ\n"
        f"database_uri = sqlite:///{tmp_path / 'auth.db'}\nadmin_username = admin\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
    )
    log = (tmp_path / "mlflow.log").open("wb")
    server = subprocess.Popen(
        [
            str(BIN / "mlflow"),
            "server",
            "--backend-store-uri",
            f"sqlite:///{tmp_path / 'server.db'}",
            "--artifacts-destination",
            (tmp_path / "served-artifacts").as_uri(),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
            "--app-name",
            "basic-auth",
        ],
        env={
            **os.environ,
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
            "MLFLOW_AUTH_CONFIG_PATH": str(auth_ini),
            "MLFLOW_AUTH_ADMIN_PASSWORD": ADMIN_PASSWORD,
            "MLFLOW_FLASK_SERVER_SECRET_KEY": "doctor-test-flask-key",
        },
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/health", server, 120, lambda: (tmp_path / "mlflow.log").read_text())
        args = ("doctor", "--json", "--home", str(tmp_path / "h"))
        bad = {"MLFLOW_TRACKING_URI": url, "MLFLOW_TRACKING_USERNAME": "admin"}
        refused = run_cli(*args, env={**bad, "MLFLOW_TRACKING_PASSWORD": "not-the-password"})
        assert refused.returncode == 4, refused.stdout + refused.stderr
        tracking = _checks(refused.stdout)["tracking"]
        assert tracking["status"] == "fail" and "HTTP 401" in tracking["detail"]
        assert "MLFLOW_TRACKING_PASSWORD" in tracking["detail"]
        assert "not-the-password" not in refused.stdout + refused.stderr
        env = {**bad, "MLFLOW_TRACKING_PASSWORD": ADMIN_PASSWORD}
        admin = ("admin", ADMIN_PASSWORD)
        created = httpx.post(
            f"{url}/api/2.0/mlflow/experiments/create",
            json={"name": "mlrig"},
            auth=admin,
            timeout=30,
        )
        assert created.status_code == 200, created.text
        done = run_cli(*args, env=env)
        assert done.returncode == 0, done.stdout + done.stderr
        artifacts = _checks(done.stdout)["artifacts"]
        assert artifacts["configured"].startswith("mlflow-artifacts:")
        assert "clients need no storage credentials" in artifacts["detail"]

        location = s3_store.bucket("doctor") + "/artifacts"
        body = {"name": "direct", "artifact_location": location}
        created = httpx.post(
            f"{url}/api/2.0/mlflow/experiments/create", json=body, auth=admin, timeout=30
        )
        assert created.status_code == 200, created.text
        direct = {**env, "MLRIG_TRACKING__EXPERIMENT": "direct"}
        with_keys = run_cli(*args, env={**direct, **s3_store.env})
        assert with_keys.returncode == 0, with_keys.stdout + with_keys.stderr
        artifacts = _checks(with_keys.stdout)["artifacts"]
        assert artifacts["configured"].startswith(location)
        assert "direct S3 access (bucket 'doctor'" in artifacts["detail"]
        no_keys = {**s3_store.env, "AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": ""}
        without = run_cli(*args, env={**direct, **no_keys})
        assert without.returncode == 4
        artifacts = _checks(without.stdout)["artifacts"]
        assert artifacts["status"] == "fail" and "no credentials" in artifacts["detail"]
        assert "AWS_SECRET_ACCESS_KEY" in artifacts["fix"]
        assert "--artifacts-destination" in artifacts["fix"]
        wrong_key = {**s3_store.env, "AWS_SECRET_ACCESS_KEY": "wrong-secret-123"}
        wrong = run_cli(*args, env={**direct, **wrong_key})
        assert wrong.returncode == 4
        assert _checks(wrong.stdout)["artifacts"]["status"] == "fail"
        for shown in (done, with_keys, without, wrong):
            assert ADMIN_PASSWORD not in shown.stdout + shown.stderr
            assert s3_store.secret not in shown.stdout + shown.stderr
            assert "wrong-secret-123" not in shown.stdout + shown.stderr
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=30)
        log.close()
    down = run_cli(*args, env=env)
    assert down.returncode == 4
    tracking = _checks(down.stdout)["tracking"]
    assert tracking["status"] == "fail" and "start the tracking server" in tracking["fix"]
