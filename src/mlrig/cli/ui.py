"""``mlrig ui``: the MLflow UI on mlrig's tracking store."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from mlrig.cli.options import ConfigOpt, HomeOpt, settings_from


def ui_command(
    host: Annotated[str, typer.Option(help="Bind address.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 5000,
    config: ConfigOpt = None,
    home: HomeOpt = None,
) -> None:
    """Start the MLflow UI on the same store as `mlrig run` (replaces this process)."""
    settings = settings_from(config, home)
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
