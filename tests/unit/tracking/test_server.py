"""The pure parts of `mlrig server` and of the server-client rules in tracking.store."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from mlrig.errors import ConfigError
from mlrig.tracking import server
from mlrig.tracking.store import direct_storage, lost_server_error

BACKEND = "postgresql+psycopg://mlflow:Db-Secret-1@db:5432/mlflow"


def _spec(**kw: object) -> server.ServerSpec:
    base: dict[str, object] = dict(
        backend_uri=BACKEND, artifacts_destination="s3://mlflow/artifacts", host="0.0.0.0",
        port=5000, workers=None, allowed_hosts=("localhost",),
    )  # fmt: skip
    return server.ServerSpec(**{**base, **kw})  # type: ignore[arg-type]


def test_allowed_hosts_keep_localhost_and_add_the_bind_host_and_service_names() -> None:
    hosts = server.allowed_hosts("10.0.0.5", 5000, "mlflow, mlflow:5000")
    assert hosts[:4] == ("localhost", "localhost:*", "127.0.0.1", "127.0.0.1:*")
    assert {"10.0.0.5", "10.0.0.5:5000", "mlflow", "mlflow:5000"} <= set(hosts)
    assert "0.0.0.0" not in server.allowed_hosts("0.0.0.0", 5000, None)


def test_the_backend_url_is_in_the_environment_never_on_the_command_line() -> None:
    spec = _spec()
    argv = server.server_argv(spec)
    assert "Db-Secret-1" not in " ".join(argv) and "--serve-artifacts" in argv
    env = server.server_env(spec, {"MLRIG_SERVER_ADMIN_PASSWORD": "x", "PATH": "/bin"}, None)
    assert env["MLFLOW_BACKEND_STORE_URI"] == BACKEND
    assert env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "false"
    assert "MLRIG_SERVER_ADMIN_PASSWORD" not in env
    assert spec.tracking_uri == "http://127.0.0.1:5000"


def test_admin_password_required_and_never_the_public_default() -> None:
    with pytest.raises(ConfigError, match="MLRIG_SERVER_ADMIN_PASSWORD"):
        server.admin_credentials({})
    with pytest.raises(ConfigError, match="public default"):
        server.admin_credentials({"MLRIG_SERVER_ADMIN_PASSWORD": "password1234"})
    admin = server.admin_credentials({"MLRIG_SERVER_ADMIN_PASSWORD": "Good-1234"})
    assert admin == server.AdminCredentials("admin", "Good-1234")


def test_several_workers_need_a_shared_secret_key() -> None:
    with pytest.raises(ConfigError, match="MLFLOW_FLASK_SERVER_SECRET_KEY"):
        server.secret_key({}, 2)
    assert len(server.secret_key({}, 1)) == 64
    assert server.secret_key({"MLFLOW_FLASK_SERVER_SECRET_KEY": "k"}, 4) == "k"


def test_auth_users_live_in_postgresql_or_the_home(tmp_path: Path) -> None:
    assert server.auth_database_uri(BACKEND, tmp_path, {}) == BACKEND
    maria = "mysql+pymysql://root@h/mlflow"
    assert server.auth_database_uri(maria, tmp_path, {}).startswith("sqlite:///")
    chosen = {"MLRIG_SERVER_AUTH_DATABASE_URI": "postgresql://a@b/auth"}
    assert server.auth_database_uri(maria, tmp_path, chosen) == "postgresql://a@b/auth"


def test_the_auth_config_is_private_and_escapes_percent(tmp_path: Path) -> None:
    path = tmp_path / "basic_auth.ini"
    path.write_text("old")
    path.chmod(0o644)
    server.write_auth_config(path, server.AdminCredentials("admin", "a%b"), "sqlite:///x.db")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    import configparser

    parsed = configparser.ConfigParser()
    parsed.read(path)
    assert parsed["mlflow"]["admin_password"] == "a%b"


def test_an_s3_experiment_without_client_credentials_is_refused_by_name() -> None:
    uri = "http://mlflow:5000"
    assert direct_storage(uri, "mlflow-artifacts:/1", {}) is None
    assert direct_storage("sqlite:///x.db", "s3://b/1", {}) is None
    problem = direct_storage(uri, "s3://b/1", {})
    assert problem is not None and "s3://b/1" in problem and "new experiment" in problem
    assert direct_storage(uri, "s3://b/1", {"AWS_ACCESS_KEY_ID": "k"}) is None


def test_a_lost_server_is_named_and_other_errors_pass_through() -> None:
    import requests

    try:
        try:
            raise requests.exceptions.ConnectionError(
                "HTTPConnectionPool(host='127.0.0.1', port=5099): Max retries exceeded"
            )
        except requests.exceptions.ConnectionError as inner:
            raise RuntimeError(
                "API request to http://u:pw@127.0.0.1:5099/api/2.0/mlflow/runs/get failed"
            ) from inner
    except RuntimeError as exc:
        lost = lost_server_error(exc)
    assert lost is not None and "tracking store http://u:***@127.0.0.1:5099" in str(lost)
    assert lost.exit_code == 4
    assert lost_server_error(ValueError("connection refused")) is None


def test_refusals_say_what_to_set() -> None:
    from mlrig.tracking.store import _refusal

    host = _refusal(403, "Invalid Host header - possible DNS rebinding attack detected")
    assert "--allowed-hosts" in host
    assert "set MLFLOW_TRACKING_USERNAME/PASSWORD" in _refusal(401, "You are not authenticated")
