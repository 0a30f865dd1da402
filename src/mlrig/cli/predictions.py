"""``mlrig predictions``: read the prediction log back."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mlrig.cli.options import ConfigOpt, HomeOpt, settings_from
from mlrig.errors import ConfigError

app = typer.Typer(help="Read logged predictions and feedback.", no_args_is_help=True)


@app.command("export")
def export_command(
    output: Annotated[Path, typer.Option("--output", "-o", help="File to write.")],
    since: Annotated[str | None, typer.Option(help="ISO time or age (30m, 12h, 7d).")] = None,
    fmt: Annotated[str, typer.Option("--format", "-f", help="parquet | csv")] = "parquet",
    config: ConfigOpt = None,
    home: HomeOpt = None,
) -> None:
    """Predictions (one column per feature) joined to their feedback, oldest first."""
    from mlrig.config import parse_since
    from mlrig.predictions.store import PredictionStore

    if fmt not in ("parquet", "csv"):
        raise ConfigError(f"--format {fmt!r}: expected parquet or csv")
    settings = settings_from(config, home)
    store = PredictionStore(settings.predictions_url)
    store.create_schema()
    frame = store.read_frame(parse_since(since))
    if fmt == "parquet":
        frame.to_parquet(output, index=False)
    else:
        frame.to_csv(output, index=False)
    typer.echo(f"{len(frame)} predictions → {output}", err=True)
