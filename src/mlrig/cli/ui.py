"""``mlrig ui``: the MLflow UI on mlrig's tracking store, or (``--prefect``) Prefect's UI."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from mlrig.cli.options import ConfigOpt, HomeOpt, settings_from


def ui_command(
    host: Annotated[str, typer.Option(help="Bind address.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 5000,
    prefect: Annotated[
        bool,
        typer.Option(
            "--prefect",
            help="Prefect's UI instead (schedules, flow runs): starts or reuses the local "
            "Prefect server, or uses PREFECT_API_URL's.",
        ),
    ] = False,
    open_browser: Annotated[
        bool, typer.Option("--open/--no-open", help="Open the Prefect UI in a browser.")
    ] = True,
    config: ConfigOpt = None,
    home: HomeOpt = None,
) -> None:
    """Start the MLflow UI on the same store as `mlrig run` (replaces this process)."""
    settings = settings_from(config, home)
    if prefect:
        _prefect_ui(settings, open_browser)
        return
    from mlrig.redact import redact_url
    from mlrig.tracking.store import check_reachable

    settings.home_dir.mkdir(parents=True, exist_ok=True)
    check_reachable(settings)  # MLflow's server would retry a dead store for minutes
    store = redact_url(settings.tracking_uri)
    typer.echo(f"MLflow UI on http://{host}:{port} (store {store})", err=True)
    os.execve(sys.executable, ui_argv(host, port), ui_env(settings, dict(os.environ)))


def ui_argv(host: str, port: int) -> list[str]:
    """The `mlflow ui` command line: no store URI on it, because every user of the machine
    can read a process's arguments (`ps`); the URIs go through the environment."""
    return [sys.executable, "-m", "mlflow", "ui", "--host", host, "--port", str(port)]


def ui_env(settings: Any, base: dict[str, str]) -> dict[str, str]:
    """``base`` plus the variables `mlflow server`/`ui` reads for --backend-store-uri and
    --registry-store-uri (its click options' envvar), and the venv's bin on PATH (mlflow
    execs uvicorn by name)."""
    bin_dir = str(Path(sys.executable).parent)
    return {
        **base,
        "PATH": f"{bin_dir}{os.pathsep}{base.get('PATH', '')}",
        "MLFLOW_BACKEND_STORE_URI": settings.tracking_uri,
        "MLFLOW_REGISTRY_STORE_URI": settings.registry_uri,
    }


def _prefect_ui(settings: Any, open_browser: bool) -> None:
    from mlrig.pipeline.prefect_server import ensure_server

    server = ensure_server(settings)
    typer.echo(server.describe(), err=True)
    url = os.environ.get("PREFECT_UI_URL") or server.ui_url
    typer.echo(url)
    graphical = sys.platform in ("darwin", "win32") or any(
        os.environ.get(v) for v in ("DISPLAY", "WAYLAND_DISPLAY")
    )
    if open_browser and graphical:  # a console browser would take over the terminal
        import webbrowser

        webbrowser.open(url)
