"""``mlrig serve``: the champion over HTTP (FastAPI under uvicorn)."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from mlrig.cli.options import ConfigOpt, HomeOpt, quiet_libraries, settings_from


def serve_command(
    model: Annotated[
        str | None,
        typer.Option(
            "--model", "-m", help="NAME@ALIAS or NAME/VERSION (default: MODEL_NAME@champion)."
        ),
    ] = None,
    host: Annotated[str | None, typer.Option(help="Bind address (default 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default 8000).")] = None,
    workers: Annotated[
        int | None, typer.Option(help="uvicorn worker processes (default 1).")
    ] = None,
    poll_interval: Annotated[
        float | None,
        typer.Option("--poll-interval", help="Seconds between registry polls; 0 = never."),
    ] = None,
    config: ConfigOpt = None,
    home: HomeOpt = None,
) -> None:
    """Serve a registered model: /predict, /invocations, /feedback, /health, /ready, /metrics."""
    import uvicorn

    from mlrig.serving.asgi import CONFIG_ENV, build_app

    quiet_libraries()
    overrides = {
        "serving": {
            "model": model,
            "host": host,
            "port": port,
            "workers": workers,
            "poll_interval": poll_interval,
        }
    }
    settings = settings_from(config, home, overrides)
    cfg = settings.serving
    if cfg.workers == 1:
        app = build_app(settings)  # loads the model: a missing one is an error before binding
        typer.echo(
            f"serving models:/{settings.served_model} on http://{cfg.host}:{cfg.port}", err=True
        )
        uvicorn.run(app, host=cfg.host, port=cfg.port, access_log=False, log_level="warning")
        return
    from mlrig.tracking.registry import resolve_version
    from mlrig.tracking.store import open_client

    resolve_version(open_client(settings), settings.served_model)  # fail fast, before forking
    # Workers rebuild the settings from the environment: hand them what the flags said.
    os.environ["MLRIG_HOME"] = str(settings.home_dir)
    os.environ["MLRIG_SERVING__MODEL"] = settings.served_model
    os.environ["MLRIG_SERVING__POLL_INTERVAL"] = str(cfg.poll_interval)
    if config is not None:
        os.environ[CONFIG_ENV] = str(config.resolve())
    typer.echo(
        f"serving models:/{settings.served_model} on http://{cfg.host}:{cfg.port} "
        f"with {cfg.workers} workers",
        err=True,
    )
    uvicorn.run(
        "mlrig.serving.asgi:app",
        factory=True,
        host=cfg.host,
        port=cfg.port,
        workers=cfg.workers,
        access_log=False,
        log_level="warning",
    )
