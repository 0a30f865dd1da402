"""Clients for mlrig's tracking and registry stores (embedded SQLite by default).

A database or server store is probed before MLflow gets it: MLflow retries a refused
connection silently for ≈1 min 44 s (shared/FACTS.md); the probe fails within seconds, names
the store (password hidden) and says what to check, and says so on stderr when it retries.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Literal

from mlrig.config import Settings
from mlrig.errors import TrackingError
from mlrig.redact import redact_text, redact_url

if TYPE_CHECKING:
    from mlflow import MlflowClient

log = logging.getLogger(__name__)

StoreKind = Literal["database", "server"]
# The SQLAlchemy dialects MLflow accepts as stores (mlflow.store.db.db_types), SQLite aside.
_DATABASES = ("postgresql", "mysql", "mssql")
_FIRST_DELAY_S = 0.5
# Failures that a retry cannot fix: the store answered, and said no.
_FINAL = ("authentication failed", "does not exist", "access denied", "no password supplied")

# MLflow's client retries each request to a server 7 times, 2 s doubling (≈4 min per call,
# measured: a run whose server went away hung > 4 min through its failure path). Bounded
# here to ≈15 s per call (1+2+4+8 s), enough for a server restart; the user's values win.
_SERVER_CLIENT_ENV = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "4",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    # MLflow prints "🏃 View run … at: http://…" on stdout when a run ends on a server: it
    # would break every `--json` output; the CLI shows the run itself
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",
}
# What MLflow's HTTP client says when a server it was using stops answering.
_LOST = ("max retries exceeded", "connection refused", "failed to establish a new connection")
_SERVER_URL = re.compile(r"https?://[^\s/'\"]+")

# URIs already found reachable in this process: a run opens many clients on one store.
_REACHABLE: set[str] = set()


def open_client(settings: Settings) -> MlflowClient:
    """A client for the tracking and registry stores of ``settings``.

    Creates the home folder for the embedded SQLite store, and probes a database or server
    store first (``check_reachable``). MLflow's process-wide URIs (and
    ``MLFLOW_TRACKING_URI``/``MLFLOW_REGISTRY_URI``) are left as the user set them: every
    tracking function works through the client it is given, so clients of two homes can be
    used side by side in one process. Raises TrackingError naming the store.
    """
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    if (
        store_kind(settings.tracking_uri) == "server"
        or store_kind(settings.registry_uri) == "server"
    ):
        for name, value in _SERVER_CLIENT_ENV.items():
            os.environ.setdefault(name, value)
    from mlflow import MlflowClient

    if settings.tracking_uri.startswith("sqlite:") or settings.registry_uri.startswith("sqlite:"):
        settings.home_dir.mkdir(parents=True, exist_ok=True)
    check_reachable(settings)
    try:
        return MlflowClient(settings.tracking_uri, settings.registry_uri)
    except Exception as exc:
        raise TrackingError(
            f"tracking store {redact(settings.tracking_uri)}: {redact_text(str(exc))}"
        ) from None


def check_reachable(settings: Settings) -> None:
    """Probe the tracking and registry stores of ``settings`` once per process (see
    ``probe_store``); embedded and unknown kinds of store are not probed."""
    what = {settings.registry_uri: "registry store", settings.tracking_uri: "tracking store"}
    for uri, name in what.items():
        if uri in _REACHABLE or store_kind(uri) is None:
            continue
        probe_store(
            uri,
            settings.tracking.connect_timeout,
            settings.tracking.connect_retries,
            what=name,
        )
        _REACHABLE.add(uri)


def store_kind(uri: str) -> StoreKind | None:
    """``database`` for a SQLAlchemy URI MLflow stores in, ``server`` for an MLflow server
    (http/https), None for anything not worth probing (SQLite, files, Databricks)."""
    scheme = uri.split(":", 1)[0].lower()
    if scheme.split("+", 1)[0] in _DATABASES:
        return "database"
    if scheme in ("http", "https"):
        return "server"
    return None


def retry_delays(retries: int) -> list[float]:
    """Seconds slept before each retry: 0.5, 1, 2, … (doubling)."""
    return [_FIRST_DELAY_S * 2**n for n in range(retries)]


def probe_store(
    uri: str,
    timeout_s: float,
    retries: int,
    what: str = "tracking store",
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Connect to the store at ``uri`` (a database connection, or one HTTP request to an
    MLflow server) with ``timeout_s`` per attempt, up to ``retries`` more times after a
    failure, logging a warning before each retry. Raises TrackingError naming the store
    (credentials masked), the last failure and what to check."""
    kind = store_kind(uri)
    if kind is None:
        return
    attempt = _connect_database if kind == "database" else _request_server
    delays = retry_delays(retries)
    shown = redact_url(uri)
    problem = ""
    for n in range(retries + 1):
        found, final = attempt(uri, timeout_s)
        if found is None:
            return
        problem = found
        if final or n == retries:
            break
        log.warning(
            "%s %s: %s; retrying in %g s (attempt %d of %d)",
            what,
            shown,
            problem,
            delays[n],
            n + 2,
            retries + 1,
        )
        sleep(delays[n])
    if problem.startswith("HTTP "):  # the server answered and refused: no connection advice
        raise TrackingError(f"{what} {shown}: {problem}")
    tries = "" if final else f" after {n + 1} attempt{'s' if n else ''}"
    raise TrackingError(f"{what} {shown}: cannot connect{tries} ({problem}); {_hint(kind)}")


def _hint(kind: StoreKind) -> str:
    where = "tracking.uri / MLFLOW_TRACKING_URI (registry: tracking.registry_uri)"
    if kind == "database":
        return (
            "check that the database server is running and accepts connections on that host "
            f"and port, and the user, password and database name in {where}"
        )
    return (
        "check that the MLflow server is running and reachable at that address "
        f"(`mlflow server --host … --port …`), and {where}"
    )


def _connect_database(uri: str, timeout_s: float) -> tuple[str | None, bool]:
    """(why the connection failed, whether retrying is pointless), (None, _) on success."""
    import sqlalchemy
    from sqlalchemy.pool import NullPool

    try:
        engine = sqlalchemy.create_engine(
            uri, poolclass=NullPool, connect_args=_timeout_args(uri, timeout_s)
        )
    except (ImportError, ValueError, sqlalchemy.exc.SQLAlchemyError) as exc:
        # an unknown dialect or a missing driver: not a connection problem
        return f"{type(exc).__name__}: {redact_text(str(exc))}", True
    try:
        with engine.connect():
            return None, False
    except Exception as exc:  # the DBAPI drivers raise their own types
        text = str(getattr(exc, "orig", None) or exc).strip()
        first = redact_text(" ".join(text.split()))[:300]
        return first or type(exc).__name__, any(f in text.lower() for f in _FINAL)
    finally:
        engine.dispose()


def _timeout_args(uri: str, timeout_s: float) -> dict[str, object]:
    """The driver's connect-timeout argument (libpq and MySQL take whole seconds)."""
    dialect = uri.split(":", 1)[0].lower()
    seconds = max(2, round(timeout_s))  # libpq treats < 2 as 2
    if dialect.startswith(("postgresql", "mysql")):
        return {"connect_timeout": seconds}
    if dialect.startswith("mssql"):
        return {"timeout": seconds}
    return {}


def _request_server(uri: str, timeout_s: float) -> tuple[str | None, bool]:
    """One authenticated GET of a cheap API call (the first experiment): any answer but a
    refusal means the server is there. The credentials are the ones MLflow's client sends
    (``MLFLOW_TRACKING_USERNAME``/``PASSWORD`` or ``MLFLOW_TRACKING_TOKEN``), so a 401/403
    shows here, once and clearly, instead of in the middle of a run. Credentials in the URI
    itself are not sent."""
    import httpx

    try:
        base = httpx.URL(uri.rstrip("/")).copy_with(userinfo=b"", query=None)
        url = base.join(base.path.rstrip("/") + _PROBE_PATH)
        auth, headers, verify = _client_auth(os.environ)
        answer = httpx.get(url, timeout=timeout_s, auth=auth, headers=headers, verify=verify)
    except httpx.InvalidURL as exc:
        return f"not a valid URL ({redact_text(str(exc))})", True
    except httpx.HTTPError as exc:
        return f"{type(exc).__name__}: {redact_text(str(exc)) or 'no answer'}", False
    if answer.status_code in (401, 403):
        return _refusal(answer.status_code, answer.text), True
    return None, False


_PROBE_PATH = "/api/2.0/mlflow/experiments/search?max_results=1"


def _client_auth(
    env: Mapping[str, str],
) -> tuple[tuple[str, str] | None, dict[str, str], bool | str]:
    """(basic auth, headers, TLS verification) as MLflow's client would send them: its
    variables for credentials and TLS. Without credentials nothing secret is sent and the
    certificate is not checked (only reachability is asked, as before)."""
    user, password = env.get("MLFLOW_TRACKING_USERNAME"), env.get("MLFLOW_TRACKING_PASSWORD")
    token = env.get("MLFLOW_TRACKING_TOKEN")
    auth = (user, password) if user and password else None
    headers = {"Authorization": f"Bearer {token}"} if token and auth is None else {}
    if auth is None and not headers:
        return None, {}, False
    verify: bool | str = env.get("MLFLOW_TRACKING_SERVER_CERT_PATH") or True
    if env.get("MLFLOW_TRACKING_INSECURE_TLS", "").lower() == "true":
        verify = False
    return auth, headers, verify


def _refusal(status: int, body: str) -> str:
    """Why an MLflow server said 401/403, and what to set."""
    if "host header" in body.lower():
        return (
            f"HTTP {status}: the server refuses this Host header; add the name clients use "
            "to the server's --allowed-hosts"
        )
    has = bool(os.environ.get("MLFLOW_TRACKING_USERNAME"))
    said = "refused the credentials" if has else "requires authentication"
    return (
        f"HTTP {status}: the server {said}; set MLFLOW_TRACKING_USERNAME/PASSWORD "
        "(a user of the server's basic-auth app)"
    )


def ensure_experiment(client: MlflowClient, settings: Settings, name: str | None = None) -> str:
    """Id of experiment ``name`` (default: the configured one), created if new: with artifacts
    under the mlrig home on the embedded store, where the server says otherwise (proxied by
    ``mlrig server``). Raises TrackingError when a server's experiment sends this client to
    object storage directly without credentials (``direct_storage``)."""
    name = name or settings.tracking.experiment
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        problem = direct_storage(settings.tracking_uri, experiment.artifact_location, os.environ)
        if problem is not None:
            raise TrackingError(f"experiment {name!r}: {problem}")
        return str(experiment.experiment_id)
    location = None
    if settings.tracking_uri.startswith("sqlite:"):
        location = settings.artifact_root.as_uri()
    log.info("creating MLflow experiment %s", name)
    return str(client.create_experiment(name, artifact_location=location))


# Variables any of which lets boto3 find credentials without a config file.
_AWS_CREDENTIALS = (
    "AWS_ACCESS_KEY_ID",
    "AWS_PROFILE",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
)


def direct_storage(tracking_uri: str, artifact_location: str, env: Mapping[str, str]) -> str | None:
    """Why a client of an MLflow server cannot use an experiment, or None.

    An experiment's artifact location is fixed when it is created: one created with an
    ``s3://`` location (before the server proxied artifacts, or by a client writing there
    itself) keeps sending every client to S3 directly, with the client's own credentials.
    Without any in ``env`` the run would fail at its first artifact, after training."""
    if store_kind(tracking_uri) != "server" or not artifact_location.startswith("s3://"):
        return None
    if any(env.get(v) for v in _AWS_CREDENTIALS):
        log.warning(
            "experiment artifacts at %s are written to S3 directly with this client's AWS "
            "credentials, not proxied by the tracking server",
            redact_url(artifact_location),
        )
        return None
    return (
        f"its artifacts live at {redact_url(artifact_location)}, which clients write to "
        "directly (it was created before the tracking server proxied artifacts), and this "
        "client has no AWS credentials; use a new experiment (tracking.experiment / "
        "MLRIG_TRACKING__EXPERIMENT) created through `mlrig server`, whose artifacts are "
        "proxied (mlflow-artifacts:/), or give this client S3 credentials"
    )


def lost_server_error(exc: BaseException) -> TrackingError | None:
    """A TrackingError for an MLflow server that stopped answering in the middle of a command
    (MLflow raises its own exception, or requests' ConnectionError, after its retries), naming
    the server (credentials masked); None for any other exception. Whatever the command had
    registered keeps a pending or failed record (tracking.registry), never champion."""
    seen: list[BaseException] = []
    link: BaseException | None = exc
    while link is not None and link not in seen:
        seen.append(link)
        link = link.__cause__ or link.__context__
    texts = [str(e) for e in seen]
    if not any(any(m in t.lower() for m in _LOST) for t in texts):
        return None
    if not any(type(e).__module__.split(".")[0] in ("mlflow", "requests", "urllib3") for e in seen):
        return None
    found = next((m.group(0) for t in texts if (m := _SERVER_URL.search(t))), None)
    where = found or os.environ.get("MLFLOW_TRACKING_URI", "the MLflow tracking server")
    return TrackingError(
        f"tracking store {redact_url(where)}: the server stopped answering during the command "
        f"(connection refused after retries); nothing it left is marked complete or champion; "
        f"{_hint('server')}, then run the command again"
    )


def redact(uri: str) -> str:
    """A URI without its password or tokens, safe to show in messages and logs."""
    return redact_url(uri)
