"""``mlrig monitor``: drift and live quality of a served model, from the prediction log.

Exit codes: 0 no drift and not degraded (or too little data for a verdict), 1 drift or
degraded, 2 error.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from mlrig.cli.options import ConfigOpt, HomeOpt, JsonOpt, quiet_libraries, settings_from

if TYPE_CHECKING:
    from mlrig.monitoring.monitor import MonitorOutcome


def monitor_command(
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            "-m",
            help="NAME (every version in the window), or NAME@ALIAS / NAME/VERSION (that "
            "version's rows only). Default: the configured model.",
        ),
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(help="Window start: an age (30m, 24h, 7d) or ISO time [default 24h]."),
    ] = None,
    window: Annotated[
        int | None, typer.Option("--window", "-n", min=1, help="The last N predictions instead.")
    ] = None,
    html: Annotated[
        Path | None, typer.Option(help="Also write Evidently's HTML report to this file.")
    ] = None,
    no_track: Annotated[
        bool, typer.Option("--no-track", help="Do not log an MLflow monitoring run.")
    ] = False,
    config: ConfigOpt = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Compare the logged features and predictions with the served version's reference, and
    live metrics (from feedback) with offline ones. Exit 0 ok, 1 drift or degraded, 2 error."""
    from mlrig.errors import MlrigError

    quiet_libraries()
    try:
        outcome = _run(model, since, window, html, no_track, config, home)
    except MlrigError as exc:
        sys.stderr.write(f"error: {exc}\n")
        raise typer.Exit(2) from None
    if as_json:
        doc = outcome.assessment.as_dict()
        doc["mlflow_run_id"] = outcome.run_id
        doc["html"] = None if outcome.html is None else str(outcome.html)
        doc["html_rows"] = outcome.html_rows
        typer.echo(json.dumps(doc, indent=2, default=str))
    else:
        _print(outcome)
    raise typer.Exit(outcome.assessment.exit_code)


def _run(
    model: str | None,
    since: str | None,
    window: int | None,
    html: Path | None,
    no_track: bool,
    config: Path | None,
    home: Path | None,
) -> MonitorOutcome:
    from mlrig.config import parse_since
    from mlrig.monitoring.monitor import monitor
    from mlrig.predictions.store import PredictionStore
    from mlrig.tracking.store import open_client

    overrides = {"monitoring": {"track": False}} if no_track else None
    settings = settings_from(config, home, overrides)
    start = None if window is not None else parse_since(since or settings.monitoring.since)
    store = PredictionStore(settings.predictions_url)
    try:
        store.create_schema()
        return monitor(settings, open_client(settings), store, model, start, window, html)
    finally:
        store.close()


def _print(outcome: MonitorOutcome) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    out = Console(soft_wrap=True, highlight=False)
    a = outcome.assessment
    w = a.window
    scope = f"last {w['last']} predictions" if w["last"] else f"since {w['since']}"
    out.print(f"window    {scope}: {w['rows']} predictions ({w['first_at']} → {w['last_at']})")
    for note in a.notes:
        out.print(f"note      {escape(note)}")
    for v in a.versions:
        out.print(f"[bold]version {v.version}[/]: {v.rows} predictions, {v.quality.labelled} with feedback")
        for note in v.notes:
            out.print(f"  note    {escape(note)}")
        if v.drift is not None:
            table = Table("column", "test", "score", "threshold", "drift")
            for c in [*v.drift.columns, *([v.prediction_drift] if v.prediction_drift else [])]:
                table.add_row(
                    escape(c.column),
                    c.test,
                    f"{c.score:.4g}",
                    f"{c.threshold:g}",
                    "[red]yes[/]" if c.drifted else "no",
                )
            out.print(table)
            out.print(
                f"  drift   {v.drift.drifted}/{len(v.drift.columns)} features "
                f"(share {v.drift.share:.2f}, threshold {v.drift.drift_share:.2f}): "
                f"{'[red]dataset drift[/]' if v.drift.dataset_drift else 'no dataset drift'}"
            )
        out.print(f"  quality {escape(v.quality.reason)}")
    if outcome.html is not None:
        out.print(f"report    {outcome.html} (Evidently, {outcome.html_rows} rows)")
    if outcome.run_id:
        out.print(f"mlflow    run {outcome.run_id} in experiment {a.model}-monitoring")
    colour = "green" if a.exit_code == 0 else "red"
    out.print(f"verdict   [{colour}]{a.verdict}[/]")
