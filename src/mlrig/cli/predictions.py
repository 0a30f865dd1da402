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
    since: Annotated[
        str | None,
        typer.Option(help="ISO time (UTC unless it has an offset) or age (30m, 12h, 7d)."),
    ] = None,
    fmt: Annotated[str, typer.Option("--format", "-f", help="parquet | csv")] = "parquet",
    model: Annotated[
        str | None, typer.Option("--model", "-m", help="Only this model's predictions.")
    ] = None,
    config: ConfigOpt = None,
    home: HomeOpt = None,
) -> None:
    """Predictions (one column per feature) joined to their feedback by model and id, oldest
    first (client ids are per model: the same id may appear once per model). A store fault
    exits with code 5 (StoreUnavailableError) and writes no file."""
    from mlrig.config import parse_since
    from mlrig.predictions.store import PredictionStore

    if fmt not in ("parquet", "csv"):
        raise ConfigError(f"--format {fmt!r}: expected parquet or csv")
    lower = parse_since(since)
    settings = settings_from(config, home)
    store = PredictionStore(settings.predictions_url)
    try:
        store.create_schema()
        frame = store.read_frame(lower, model)
    finally:
        store.close()
    try:
        if fmt == "parquet":
            frame.to_parquet(output, index=False)
        else:
            frame.to_csv(output, index=False)
    except OSError as exc:
        raise ConfigError(f"--output {output}: cannot write ({exc.strerror or exc})") from exc
    typer.echo(f"{len(frame)} predictions → {output}", err=True)


@app.command("upgrade")
def upgrade_command(
    check: Annotated[
        bool,
        typer.Option("--check", help="Only say which revision the store is at; exit 1 if behind."),
    ] = False,
    config: ConfigOpt = None,
    home: HomeOpt = None,
) -> None:
    """Bring the prediction store's schema to this mlrig's newest revision (Alembic, version
    table ``mlrig_predictions_version``; rows are never dropped). Every open does this too;
    run it ahead of a rollout to migrate once, before the servers start. A store fault exits
    with code 5."""
    from mlrig.predictions import migrate
    from mlrig.predictions.store import PredictionStore
    from mlrig.redact import redact_url

    settings = settings_from(config, home)
    store = PredictionStore(settings.predictions_url)
    where = redact_url(settings.predictions_url)
    try:
        if check:
            found, head = store.revision(), migrate.head()
            typer.echo(f"{where}: revision {found or 'none'}, head {head}")
            if found != head:
                raise typer.Exit(1)
            return
        before, after = store.upgrade()
    finally:
        store.close()
    moved = "already at" if before == after else f"{before or 'empty'} →"
    typer.echo(f"{where}: {moved} revision {after}")
