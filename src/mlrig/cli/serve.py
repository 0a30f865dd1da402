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
    model_uri: Annotated[
        str | None,
        typer.Option(
            "--model-uri",
            help="Serve this model (runs:/ID/model or a local model directory) without the "
            "registry; no polling.",
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
            "model_uri": model_uri,
            "host": host,
            "port": port,
            "workers": workers,
            "poll_interval": poll_interval,
        }
    }
    settings = settings_from(config, home, overrides)
    cfg = settings.serving
    what = cfg.model_uri or f"models:/{settings.served_model}"
    if cfg.workers == 1:
        # Loads the model (registry, else its local copy with a warning, or --model-uri):
        # no model at all is an error before binding.
        app = build_app(settings)
        typer.echo(f"serving {what} on http://{cfg.host}:{cfg.port}", err=True)
        uvicorn.run(
            app,
            host=cfg.host,
            port=cfg.port,
            access_log=False,
            log_level="warning",
            timeout_keep_alive=cfg.keep_alive,
        )
        return
    from mlrig.serving.asgi import open_store
    from mlrig.serving.startup import open_follower

    # Fail fast, before forking: the same start-up (store, then registry, local copy or URI)
    # as a worker's.
    open_store(settings).close()
    open_follower(settings)
    # Workers rebuild the settings from the environment: hand them what the flags said.
    os.environ["MLRIG_HOME"] = str(settings.home_dir)
    if cfg.model_uri:
        os.environ["MLRIG_SERVING__MODEL_URI"] = cfg.model_uri
    else:
        os.environ["MLRIG_SERVING__MODEL"] = settings.served_model
    os.environ["MLRIG_SERVING__POLL_INTERVAL"] = str(cfg.poll_interval)
    if config is not None:
        os.environ[CONFIG_ENV] = str(config.resolve())
    typer.echo(
        f"serving {what} on http://{cfg.host}:{cfg.port} with {cfg.workers} workers", err=True
    )
    uvicorn.run(
        "mlrig.serving.asgi:app",
        factory=True,
        host=cfg.host,
        port=cfg.port,
        workers=cfg.workers,
        access_log=False,
        log_level="warning",
        timeout_keep_alive=cfg.keep_alive,
    )
