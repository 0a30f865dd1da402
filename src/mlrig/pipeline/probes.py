"""`mlrig doctor`'s probes: one short, bounded attempt per backend, all at once in threads.

Like tracking/store.py's probe, a database gets one connection with the driver's connect
timeout and an HTTP server one request; never MLflow's or Prefect's clients (MLflow retries a
refused connection for ≈1 min 44 s, importing Prefect costs ≈2–3 s). An embedded SQLite file
that does not exist yet is not created: its folder must be writable. Nothing here prints; the
results are ``Check``s (doctor.py renders and scrubs them).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from mlrig.config import Settings
from mlrig.pipeline.doctor import (
    PREFECT_FIX,
    S3_CREDENTIALS_FIX,
    Check,
    Report,
    Target,
    artifact_kind,
    scrubbed,
    secrets_in,
    shown,
    store_fix,
    targets,
    worker_fix,
)
from mlrig.pipeline.schedule import FLOW_NAMES  # light: Prefect is imported inside its functions
from mlrig.redact import redact_text, redact_url


def run_checks(
    settings: Settings,
    timeout: float,
    pools: tuple[str, ...] = (),
    env: Mapping[str, str] = os.environ,
) -> Report:
    """Probe every configured backend (each within about ``timeout`` s, in parallel) and the
    Prefect work pools mlrig's deployments use plus ``pools``; the report is scrubbed."""
    tracking, registry, predictions, optuna = targets(settings, env)
    jobs: list[Callable[[], list[Check]]] = [
        lambda: _tracking_and_artifacts(tracking, settings, timeout, env),
        lambda: [_store(registry, timeout, env)],
        lambda: [_store(predictions, timeout, env)],
        lambda: [_store(optuna, timeout, env)],
        lambda: _prefect(settings, timeout, pools, env),
    ]
    with ThreadPoolExecutor(len(jobs)) as pool:
        results = [c for checks in pool.map(lambda job: job(), jobs) for c in checks]
    urls = [t.url for t in (tracking, registry, predictions, optuna)]
    urls.append(env.get("PREFECT_API_URL", ""))
    return scrubbed(Report(tuple(results)), secrets_in(env, urls))


# -- SQL stores and the MLflow server ---------------------------------------------------------


def _store(target: Target, timeout: float, env: Mapping[str, str]) -> Check:
    if target.kind == "server":
        problem, detail = _mlflow_server(target.url, timeout, env)
    elif target.kind in ("sqlite", "database"):
        problem, detail = _database(target.url, timeout)
    else:
        return Check(target.backend, shown(target), "skip", "not probed (unknown kind of store)")
    if problem is None:
        return Check(target.backend, shown(target), "ok", detail)
    return Check(target.backend, shown(target), "fail", problem, store_fix(target, problem))


def _database(url: str, timeout: float) -> tuple[str | None, str]:
    """(the problem or None, what was found) for a SQLAlchemy URL."""
    import sqlalchemy
    from sqlalchemy.pool import NullPool

    if url.startswith("sqlite:"):
        path = _sqlite_path(url)
        if path is not None and not path.exists():
            folder = _existing_parent(path)
            if os.access(folder, os.W_OK):
                return None, "not created yet (created on first use)"
            return f"{path} does not exist and {folder} is not writable", ""
    try:
        engine = sqlalchemy.create_engine(
            url, poolclass=NullPool, connect_args=_timeout_args(url, timeout)
        )
    except (ImportError, ValueError, sqlalchemy.exc.SQLAlchemyError) as exc:
        return f"{type(exc).__name__}: {redact_text(str(exc))}", ""
    try:
        with engine.connect() as conn:
            tables = len(sqlalchemy.inspect(conn).get_table_names())
        return None, f"reachable ({tables} tables)"
    except Exception as exc:  # each DBAPI driver raises its own types
        text = str(getattr(exc, "orig", None) or exc).strip()
        return "cannot connect: " + (" ".join(text.split())[:300] or type(exc).__name__), ""
    finally:
        engine.dispose()


def _sqlite_path(url: str) -> Path | None:
    rest = url.split(":///", 1)[1] if ":///" in url else ""
    rest = rest.split("?", 1)[0]
    return Path(rest) if rest and rest != ":memory:" else None


def _existing_parent(path: Path) -> Path:
    for parent in path.parents:
        if parent.exists():
            return parent
    return Path("/")


def _timeout_args(url: str, timeout: float) -> dict[str, object]:
    dialect = url.split(":", 1)[0].lower()
    seconds = max(2, round(timeout))  # libpq and MySQL take whole seconds; libpq treats < 2 as 2
    if dialect.startswith(("postgresql", "mysql", "mariadb")):
        return {"connect_timeout": seconds}
    if dialect.startswith("sqlite"):
        return {"timeout": timeout}
    return {}


def _mlflow_auth(env: Mapping[str, str]) -> dict[str, Any]:
    if env.get("MLFLOW_TRACKING_TOKEN"):
        return {"headers": {"Authorization": f"Bearer {env['MLFLOW_TRACKING_TOKEN']}"}}
    if env.get("MLFLOW_TRACKING_USERNAME") and env.get("MLFLOW_TRACKING_PASSWORD"):
        return {"auth": (env["MLFLOW_TRACKING_USERNAME"], env["MLFLOW_TRACKING_PASSWORD"])}
    return {}


def _server_url(url: str, path: str) -> httpx.URL:
    return httpx.URL(url.rstrip("/") + path).copy_with(userinfo=b"")


def _mlflow_server(url: str, timeout: float, env: Mapping[str, str]) -> tuple[str | None, str]:
    try:
        httpx.get(_server_url(url, "/health"), timeout=timeout, verify=False)
    except httpx.HTTPError as exc:
        return f"cannot connect: {type(exc).__name__}: {str(exc) or 'no answer'}", ""
    # One authenticated API call: a server with basic auth answers 401 to wrong credentials.
    try:
        answer = _experiment(url, "Default", timeout, env)
    except httpx.HTTPError as exc:
        return f"the API does not answer: {type(exc).__name__}", ""
    if answer.status_code in (401, 403):
        return (
            f"the server refuses mlrig's credentials (HTTP {answer.status_code}); set "
            "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD",
            "",
        )
    return None, "MLflow server answers"


def _experiment(url: str, name: str, timeout: float, env: Mapping[str, str]) -> httpx.Response:
    return httpx.get(
        _server_url(url, "/api/2.0/mlflow/experiments/get-by-name"),
        params={"experiment_name": name},
        timeout=timeout,
        verify=False,
        **_mlflow_auth(env),
    )


# -- artifacts -------------------------------------------------------------------------------


def _tracking_and_artifacts(
    target: Target, settings: Settings, timeout: float, env: Mapping[str, str]
) -> list[Check]:
    check = _store(target, timeout, env)
    if check.status != "ok":
        skipped = Check("artifacts", "?", "skip", "unknown until the tracking store answers")
        return [check, skipped]
    return [check, _artifacts(target, settings, timeout, env)]


def _artifact_location(
    target: Target, settings: Settings, timeout: float, env: Mapping[str, str]
) -> tuple[str | None, str]:
    """(the experiment's artifact location or None when it does not exist yet, why)."""
    name = settings.tracking.experiment
    if target.kind == "server":
        try:
            answer = _experiment(target.url, name, timeout, env)
        except httpx.HTTPError as exc:
            return None, f"cannot ask the server ({type(exc).__name__})"
        if answer.status_code == 200:
            return str(answer.json()["experiment"]["artifact_location"]), "the server"
        return None, "the server's default artifact root (--artifacts-destination)"
    if target.kind == "sqlite" and not (_sqlite_path(target.url) or Path("/")).exists():
        return None, f"{settings.artifact_root} (mlrig's default beside the SQLite store)"
    import sqlalchemy
    from sqlalchemy.pool import NullPool

    engine = sqlalchemy.create_engine(
        target.url, poolclass=NullPool, connect_args=_timeout_args(target.url, timeout)
    )
    try:
        with engine.connect() as conn:
            row = conn.execute(
                sqlalchemy.text("SELECT artifact_location FROM experiments WHERE name = :n"),
                {"n": name},
            ).first()
    except sqlalchemy.exc.SQLAlchemyError:
        row = None  # no tables yet
    finally:
        engine.dispose()
    if row is not None:
        return str(row[0]), "the store"
    if target.kind == "sqlite":
        return None, f"{settings.artifact_root} (mlrig's default beside the SQLite store)"
    return None, "MLflow's default artifact root"


def _artifacts(target: Target, settings: Settings, timeout: float, env: Mapping[str, str]) -> Check:
    experiment = settings.tracking.experiment
    location, where = _artifact_location(target, settings, timeout, env)
    if location is None:
        detail = f"experiment {experiment!r} not created yet; the first run puts them in {where}"
        return Check("artifacts", f"experiment {experiment!r}", "ok", detail)
    configured = f"{redact_url(location)} (experiment {experiment!r})"
    kind = artifact_kind(location)
    if kind == "proxied":
        return Check(
            "artifacts",
            configured,
            "ok",
            "proxied by the tracking server: clients need no storage credentials",
        )
    if kind == "s3":
        return _s3(location, configured, timeout, env)
    if kind == "local":
        path = Path(location.removeprefix("file://"))
        if os.access(_existing_parent(path / "x"), os.W_OK):
            return Check("artifacts", configured, "ok", "a local folder, writable")
        return Check(
            "artifacts",
            configured,
            "fail",
            f"{path}: not writable here",
            "make it writable, or track to a server that proxies artifacts",
        )
    return Check("artifacts", configured, "skip", "not probed (not S3 nor a local path)")


def _s3(location: str, configured: str, timeout: float, env: Mapping[str, str]) -> Check:
    has_keys = bool(env.get("AWS_ACCESS_KEY_ID") and env.get("AWS_SECRET_ACCESS_KEY"))
    if not (has_keys or env.get("AWS_PROFILE")):
        return Check(
            "artifacts",
            configured,
            "fail",
            "direct S3 access, and this client has no credentials (AWS_ACCESS_KEY_ID / "
            "AWS_SECRET_ACCESS_KEY / AWS_PROFILE unset)",
            S3_CREDENTIALS_FIX,
        )
    import boto3
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError

    bucket = location.split("://", 1)[1].split("/", 1)[0]
    endpoint = env.get("MLFLOW_S3_ENDPOINT_URL")
    config = Config(connect_timeout=timeout, read_timeout=timeout, retries={"max_attempts": 0})
    try:
        boto3.client("s3", endpoint_url=endpoint, config=config).head_bucket(Bucket=bucket)
    except (BotoCoreError, ClientError) as exc:
        return Check(
            "artifacts",
            configured,
            "fail",
            f"bucket {bucket!r} at {endpoint or 'AWS'}: {exc}",
            S3_CREDENTIALS_FIX,
        )
    return Check(
        "artifacts",
        configured,
        "ok",
        f"direct S3 access (bucket {bucket!r} at {endpoint or 'AWS'} answers); every client "
        "needs these credentials",
    )


# -- Prefect ---------------------------------------------------------------------------------


def _prefect_client_args(env: Mapping[str, str]) -> dict[str, Any]:
    if env.get("PREFECT_API_KEY"):
        return {"headers": {"Authorization": f"Bearer {env['PREFECT_API_KEY']}"}}
    if env.get("PREFECT_API_AUTH_STRING"):
        user, _, password = env["PREFECT_API_AUTH_STRING"].partition(":")
        return {"auth": (user, password)}
    return {}  # httpx sends a URL's user:password as basic auth


def _prefect(
    settings: Settings, timeout: float, pools: tuple[str, ...], env: Mapping[str, str]
) -> list[Check]:
    url = env.get("PREFECT_API_URL")
    if not url:
        from mlrig.pipeline.prefect_server import local_server

        server = local_server(settings)
        running = f"running at {server.api_url}" if server else "not running"
        detail = (
            "PREFECT_API_URL unset: `mlrig schedule` serves schedules in its own process with a "
            f"local server under the home ({running})"
        )
        return [Check("prefect", "local", "ok", detail)]
    configured = f"{redact_url(url)} (PREFECT_API_URL)"
    base = url.rstrip("/")
    try:
        with httpx.Client(timeout=timeout, **_prefect_client_args(env)) as client:
            health = client.get(f"{base}/health")
            if health.status_code != 200:
                problem = f"GET {redact_url(base)}/health answered HTTP {health.status_code}"
                if health.status_code == 404 and not base.endswith("/api"):
                    problem += " (Prefect's API URL ends in /api)"
                return [Check("prefect", configured, "fail", problem, PREFECT_FIX)]
            used = _deployment_pools(client, base)
            checks = [Check("prefect", configured, "ok", "Prefect server answers")]
            for pool in sorted(set(used) | set(pools)):
                checks.append(_pool(client, base, pool, used.get(pool, [])))
            return checks
    except httpx.HTTPError as exc:
        problem = f"cannot connect: {type(exc).__name__}: {str(exc) or 'no answer'}"
        return [Check("prefect", configured, "fail", problem, PREFECT_FIX)]


def _deployment_pools(client: httpx.Client, base: str) -> dict[str, list[str]]:
    """Work pool → names of mlrig's deployments on it."""
    flows = client.post(
        f"{base}/flows/filter", json={"flows": {"name": {"any_": list(FLOW_NAMES.values())}}}
    ).json()
    if not flows:
        return {}
    found = client.post(
        f"{base}/deployments/filter",
        json={"flows": {"id": {"any_": [f["id"] for f in flows]}}, "limit": 200},
    ).json()
    out: dict[str, list[str]] = {}
    for d in found:
        if d.get("work_pool_name"):
            out.setdefault(d["work_pool_name"], []).append(d["name"])
    return out


def _pool(client: httpx.Client, base: str, pool: str, deployments: list[str]) -> Check:
    name = f"pool {pool}"
    used = f"deployments: {', '.join(sorted(deployments))}" if deployments else "no deployment"
    answer = client.get(f"{base}/work_pools/{pool}")
    if answer.status_code == 404:
        fix = (
            f"create it: prefect work-pool create {pool} --type process (or mlrig schedule --pool)"
        )
        return Check(name, used, "fail", f"no work pool {pool!r} on the server", fix)
    if answer.status_code != 200:
        return Check(name, used, "fail", f"reading the pool answered HTTP {answer.status_code}")
    workers = client.post(f"{base}/work_pools/{pool}/workers/filter", json={}).json()
    online = [w for w in workers if w.get("status") == "ONLINE"]
    kind = answer.json().get("type", "?")
    if online:
        beats = ", ".join(f"{w['name']} (heartbeat {w['last_heartbeat_time']})" for w in online)
        return Check(name, used, "ok", f"type {kind}; {len(online)} worker(s) polling: {beats}")
    return Check(
        name,
        used,
        "fail",
        f"type {kind}; no worker is polling it (its scheduled runs wait)",
        worker_fix(pool),
    )
