"""``mlrig server``: MLflow's tracking server for a team (proxied artifacts, optional auth)."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from mlrig.cli.options import ConfigOpt, HomeOpt, settings_from


def server_command(
    backend_store_uri: Annotated[
        str | None,
        typer.Option(
            envvar="MLFLOW_BACKEND_STORE_URI",
            show_envvar=True,
            help="SQLAlchemy URL of the tracking and registry database (PostgreSQL, MySQL/"
            "MariaDB, SQLite); prefer the environment variable for one with a password "
            "(default: tracking.uri when a database, else the home's mlflow.db).",
        ),
    ] = None,
    artifacts_destination: Annotated[
        str | None,
        typer.Option(
            envvar="MLFLOW_ARTIFACTS_DESTINATION",
            show_envvar=True,
            help="Where the server keeps artifacts: s3://bucket/prefix (credentials from this "
            "process's AWS_* / MLFLOW_S3_ENDPOINT_URL) or a path (default: <home>/artifacts).",
        ),
    ] = None,
    host: Annotated[str, typer.Option(help="Bind address.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 5000,
    workers: Annotated[
        int | None, typer.Option(min=1, help="Worker processes (MLflow's default: 4).")
    ] = None,
    allowed_hosts: Annotated[
        str | None,
        typer.Option(
            help="Extra Host headers to accept, comma-separated, e.g. mlflow,mlflow:5000 for "
            "a compose/Kubernetes service (localhost and the bind host always pass)."
        ),
    ] = None,
    auth: Annotated[
        bool,
        typer.Option(
            "--auth",
            help="MLflow's basic-auth app; admin from MLRIG_SERVER_ADMIN_USERNAME/PASSWORD, "
            "MLFLOW_FLASK_SERVER_SECRET_KEY required with several workers.",
        ),
    ] = False,
    config: ConfigOpt = None,
    home: HomeOpt = None,
) -> None:
    """Run MLflow's tracking server in the foreground; clients export MLFLOW_TRACKING_URI."""
    from mlrig.redact import redact_url
    from mlrig.tracking import server
    from mlrig.tracking.store import probe_store, store_kind

    settings = settings_from(config, home)
    home_dir = settings.home_dir
    configured = settings.tracking.uri
    backend = (
        backend_store_uri
        or (configured if configured and store_kind(configured) == "database" else None)
        or f"sqlite:///{home_dir / 'mlflow.db'}"
    )
    if backend.startswith("sqlite:") or not (artifacts_destination or "").count("://"):
        home_dir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    admin, key = None, None
    if auth:  # the settings first: they fail without waiting for the database
        admin = server.admin_credentials(env)
        key = server.secret_key(env, workers)
    probe_store(
        backend,
        settings.tracking.connect_timeout,
        settings.tracking.connect_retries,
        what="backend store",
    )
    auth_config = None
    if admin is not None:
        auth_config = server.write_auth_config(
            home_dir / server.AUTH_CONFIG_NAME,
            admin,
            server.auth_database_uri(backend, home_dir, env),
        )
    spec = server.ServerSpec(
        backend_uri=backend,
        artifacts_destination=artifacts_destination or str(home_dir / "artifacts"),
        host=host,
        port=port,
        workers=workers,
        allowed_hosts=server.allowed_hosts(host, port, allowed_hosts),
        auth_config=auth_config,
    )
    typer.echo(
        f"MLflow tracking server on {host}:{port}: backend {redact_url(backend)}, "
        f"artifacts {redact_url(spec.artifacts_destination)} (proxied)",
        err=True,
    )
    typer.echo(f"export MLFLOW_TRACKING_URI={spec.tracking_uri}")
    if admin is not None:
        typer.echo(f"export MLFLOW_TRACKING_USERNAME={admin.username}  # or another user")
        typer.echo(
            f"export MLFLOW_TRACKING_PASSWORD=…  # that user's password ({server.ADMIN_PASSWORD_ENV} for the admin)"
        )
    code = server.run_foreground(server.server_argv(spec), server.server_env(spec, env, key))
    raise typer.Exit(code)
