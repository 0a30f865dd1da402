"""``mlrig models``: inspect the model registry."""

from __future__ import annotations

import json
from dataclasses import asdict

import typer

from mlrig.cli.options import ConfigOpt, HomeOpt, JsonOpt, quiet_libraries, settings_from

app = typer.Typer(help="Inspect registered models, versions and aliases.", no_args_is_help=True)


@app.command("list")
def list_command(config: ConfigOpt = None, home: HomeOpt = None, as_json: JsonOpt = False) -> None:
    """Registered models with versions, aliases and key metrics, newest first."""
    from rich.console import Console
    from rich.table import Table

    from mlrig.tracking.registry import list_versions
    from mlrig.tracking.store import open_client

    quiet_libraries()
    versions = list_versions(open_client(settings_from(config, home)))
    if as_json:
        typer.echo(json.dumps([asdict(v) for v in versions], indent=2))
        return
    if not versions:
        Console().print("no registered models yet: run `mlrig run`")
        return
    table = Table("model", "version", "aliases", "rmse", "mae", "r2", "run id")
    for v in versions:
        fmt = {k: f"{v.metrics[k]:.4f}" if k in v.metrics else "—" for k in ("rmse", "mae", "r2")}
        table.add_row(
            v.name,
            v.version,
            ", ".join(v.aliases),
            fmt["rmse"],
            fmt["mae"],
            fmt["r2"],
            v.run_id or "",
        )
    Console().print(table)
