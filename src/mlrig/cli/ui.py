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
    settings.home_dir.mkdir(parents=True, exist_ok=True)
    bin_dir = str(Path(sys.executable).parent)  # mlflow execs uvicorn by name
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
    argv = [
        sys.executable,
        "-m",
        "mlflow",
        "ui",
        "--backend-store-uri",
        settings.tracking_uri,
        "--registry-store-uri",
        settings.registry_uri,
        "--host",
        host,
        "--port",
        str(port),
    ]
    typer.echo(f"MLflow UI on http://{host}:{port} (store {settings.tracking_uri})", err=True)
    os.execve(sys.executable, argv, env)


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
