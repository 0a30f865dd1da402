"""Options shared by several commands, and the one place that quiets library logging."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Any

import typer

ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="TOML config file (default: ./mlrig.toml when present)."),
]
HomeOpt = Annotated[
    Path | None, typer.Option("--home", help="mlrig home for embedded stores [env: MLRIG_HOME].")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print a machine-readable JSON summary.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress output.")]


def settings_from(
    config: Path | None, home: Path | None, overrides: dict[str, Any] | None = None
) -> Any:
    from mlrig.config import load_settings

    merged = dict(overrides or {})
    if home is not None:
        merged["home"] = home
    return load_settings(config, merged)


def quiet_libraries() -> None:
    """MLflow and alembic narrate store migrations at INFO; the CLI shows its own progress."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    for name in ("mlflow", "alembic", "prefect", "httpx"):
        logging.getLogger(name).setLevel(logging.WARNING)
