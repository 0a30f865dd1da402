"""``mlrig doctor``: which backends are configured, whether each answers, and the fix."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from mlrig.cli.options import ConfigOpt, HomeOpt, JsonOpt, settings_from


def doctor_command(
    pool: Annotated[
        list[str] | None,
        typer.Option(
            "--pool", help="Also check this Prefect work pool for polling workers (repeatable)."
        ),
    ] = None,
    timeout: Annotated[
        float, typer.Option("--timeout", min=0.5, max=60, help="Seconds per probe.")
    ] = 3.0,
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
    home: HomeOpt = None,
) -> None:
    """Check the tracking store, registry, artifacts, prediction store, Optuna storage and
    Prefect server (and whether a worker polls each work pool mlrig deploys to); print the fix
    for each failure. Passwords are never shown. Exit 0 when all answer, 4 otherwise."""
    from mlrig.pipeline.doctor import render
    from mlrig.pipeline.probes import run_checks

    settings = settings_from(config, home)
    report = run_checks(settings, timeout, tuple(pool or ()))
    if as_json:
        typer.echo(json.dumps(report.as_dict(), indent=2))
    else:
        typer.echo(render(report))
    raise typer.Exit(report.exit_code)
