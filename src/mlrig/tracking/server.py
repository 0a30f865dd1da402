"""MLflow's own tracking server, started by ``mlrig server`` for a team.

mlrig adds no server of its own: it builds the ``mlflow server`` command line and environment
and runs it in the foreground. What it decides on top of MLflow's defaults, and why:

- artifacts are always proxied (``--serve-artifacts``): clients never hold storage credentials;
  only this process's environment does (``AWS_*``, ``MLFLOW_S3_ENDPOINT_URL``);
- the backend URI reaches the child through ``MLFLOW_BACKEND_STORE_URI`` (the variable its
  click option reads), never its argv: ``ps`` shows every user the arguments of a process;
- ``MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false``: the job runner costs 7 more processes and
  ≈1.8 GB (9 processes / 2.3 GB against 2 / 480 MB, shared/FACTS.md) and mlrig submits no job;
- ``--allowed-hosts`` replaces MLflow's default (localhost and private IPs), so mlrig passes
  that default plus the bind host; compose/Kubernetes names are added by the user;
- ``--auth`` runs MLflow's ``basic-auth`` app with an admin from the environment: MLflow's
  historical default password is public and refused here as it is by MLflow.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from mlrig.errors import ConfigError

ADMIN_USER_ENV = "MLRIG_SERVER_ADMIN_USERNAME"
ADMIN_PASSWORD_ENV = "MLRIG_SERVER_ADMIN_PASSWORD"
SECRET_KEY_ENV = "MLFLOW_FLASK_SERVER_SECRET_KEY"
BACKEND_ENV = "MLFLOW_BACKEND_STORE_URI"
ARTIFACTS_ENV = "MLFLOW_ARTIFACTS_DESTINATION"
AUTH_DATABASE_ENV = "MLRIG_SERVER_AUTH_DATABASE_URI"
AUTH_CONFIG_NAME = "basic_auth.ini"
# The admin password older MLflow versions shipped in basic_auth.ini (GHSA-gq3w-7jj3-x7gr).
_PUBLIC_DEFAULT_PASSWORD = "password1234"
_LOCAL_NAMES = ("localhost", "127.0.0.1")
# MLflow's own default keeps private IPv4 addresses (RFC 1918): a pod or a compose network
# reaches the server by address too; --allowed-hosts would otherwise drop them.
_PRIVATE_IPS = ["10.*", "192.168.*", *(f"172.{n}.*" for n in range(16, 32))]


@dataclass(frozen=True)
class AdminCredentials:
    """The basic-auth admin the server creates on its first start."""

    username: str
    password: str


@dataclass(frozen=True)
class ServerSpec:
    """Everything ``mlflow server`` is started with (the backend URI may hold a password)."""

    backend_uri: str
    artifacts_destination: str
    host: str
    port: int
    workers: int | None
    allowed_hosts: tuple[str, ...]
    auth_config: Path | None = None  # set with --auth

    @property
    def tracking_uri(self) -> str:
        """The URI clients export; a wildcard bind address is reached through localhost."""
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"


def allowed_hosts(host: str, port: int, extra: str | None) -> tuple[str, ...]:
    """Host headers the server accepts: localhost and 127.0.0.1 (any port), private IPv4
    addresses (MLflow's default), the bind host (unless a wildcard) with and without the
    port, and ``extra`` (comma-separated, as given,
    e.g. ``mlflow,mlflow:5000`` for a compose/Kubernetes service name)."""
    names: list[str] = []
    for name in _LOCAL_NAMES:
        names += [name, f"{name}:*"]
    names += _PRIVATE_IPS
    if host not in ("0.0.0.0", "::", "", *_LOCAL_NAMES):
        names += [host, f"{host}:{port}"]
    names += [h.strip() for h in (extra or "").split(",") if h.strip()]
    return tuple(dict.fromkeys(names))


def admin_credentials(env: Mapping[str, str]) -> AdminCredentials:
    """The admin from ``MLRIG_SERVER_ADMIN_USERNAME`` (default ``admin``) and
    ``MLRIG_SERVER_ADMIN_PASSWORD``. Raises ConfigError when the password is missing or is
    MLflow's public default."""
    password = env.get(ADMIN_PASSWORD_ENV, "")
    if not password:
        raise ConfigError(
            f"--auth needs an admin password: set {ADMIN_PASSWORD_ENV} (and "
            f"{ADMIN_USER_ENV}, default admin) in the server's environment"
        )
    if password == _PUBLIC_DEFAULT_PASSWORD:
        raise ConfigError(
            f"{ADMIN_PASSWORD_ENV} is MLflow's public default admin password; choose another"
        )
    return AdminCredentials(env.get(ADMIN_USER_ENV) or "admin", password)


def secret_key(env: Mapping[str, str], workers: int | None) -> str:
    """The Flask secret key of the auth app (CSRF): ``MLFLOW_FLASK_SERVER_SECRET_KEY``, or a
    random one for a single worker. Several workers or replicas must share one, so it is
    required then (ConfigError)."""
    key = env.get(SECRET_KEY_ENV, "")
    if key:
        return key
    if workers is not None and workers > 1:
        raise ConfigError(
            f"--auth with --workers {workers} needs {SECRET_KEY_ENV} (the same value on every "
            "worker and replica); set it in the server's environment"
        )
    return secrets.token_hex(32)


def auth_database_uri(backend_uri: str, home: Path, env: Mapping[str, str]) -> str:
    """Where the auth app keeps its users: ``MLRIG_SERVER_AUTH_DATABASE_URI``; else the
    backend's own database when it is PostgreSQL (replicas share it; MLflow versions those
    tables apart, ``alembic_version_auth``); else SQLite in the home. Not MySQL/MariaDB: the
    auth schema names two foreign keys ``fk_user_id``, which InnoDB refuses in one database
    (errno 121, measured with MariaDB and mlflow 3.17)."""
    if chosen := env.get(AUTH_DATABASE_ENV):
        return chosen
    if backend_uri.split(":", 1)[0].split("+", 1)[0].lower() == "postgresql":
        return backend_uri
    return f"sqlite:///{home / 'basic_auth.db'}"


def write_auth_config(path: Path, admin: AdminCredentials, database_uri: str) -> Path:
    """Write MLflow's basic-auth config at ``path``, readable by its owner only (0600: it holds
    the admin password and maybe the database's). New users get READ on everything."""
    lines = [
        "[mlflow]",
        "default_permission = READ",
        f"database_uri = {_ini(database_uri)}",
        f"admin_username = {_ini(admin.username)}",
        f"admin_password = {_ini(admin.password)}",
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth",
        "",
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # an older file keeps its mode through O_CREAT
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write("\n".join(lines))
    return path


def _ini(value: str) -> str:
    # configparser interpolates '%' (BasicInterpolation); URL-encoded passwords carry them
    return value.replace("%", "%%")


def server_argv(spec: ServerSpec) -> list[str]:
    """The ``mlflow server`` command line: nothing secret on it."""
    argv = [sys.executable, "-m", "mlflow", "server"]
    argv += ["--host", spec.host, "--port", str(spec.port)]
    argv += ["--serve-artifacts", "--artifacts-destination", spec.artifacts_destination]
    argv += ["--allowed-hosts", ",".join(spec.allowed_hosts)]
    if spec.workers is not None:
        argv += ["--workers", str(spec.workers)]
    if spec.auth_config is not None:
        argv += ["--app-name", "basic-auth"]
    return argv


def server_env(spec: ServerSpec, base: Mapping[str, str], key: str | None) -> dict[str, str]:
    """``base`` plus the backend URIs, the job runner off, the auth config and secret key
    (with ``--auth``), and the venv's bin on PATH (MLflow starts uvicorn by name)."""
    bin_dir = str(Path(sys.executable).parent)
    env = {
        **base,
        "PATH": f"{bin_dir}{os.pathsep}{base.get('PATH', '')}",
        BACKEND_ENV: spec.backend_uri,
        "MLFLOW_REGISTRY_STORE_URI": spec.backend_uri,
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
    }
    # the admin lives in the 0600 file only; MLflow would let these variables override it
    for name in ("MLFLOW_AUTH_ADMIN_USERNAME", "MLFLOW_AUTH_ADMIN_PASSWORD", ADMIN_PASSWORD_ENV):
        env.pop(name, None)
    if spec.auth_config is not None:
        env["MLFLOW_AUTH_CONFIG_PATH"] = str(spec.auth_config)
        env[SECRET_KEY_ENV] = key or ""
    return env


def run_foreground(argv: list[str], env: dict[str, str]) -> int:
    """Run the server in its own process group, pass SIGTERM/SIGINT on to the whole group
    (MLflow's uvicorn workers included) and return the child's exit code."""
    child = subprocess.Popen(argv, env=env, start_new_session=True)

    def forward(signum: int, _frame: FrameType | None) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signum)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        code = child.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
    # a group member (a uvicorn worker) may outlive its parent: end it with the server
    with contextlib.suppress(ProcessLookupError):
        os.killpg(child.pid, signal.SIGTERM)
    return 128 - code if code < 0 else code
