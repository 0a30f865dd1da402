"""``mlrig retrain`` and ``mlrig loop``: the closed loop by hand (the schedule runs ``loop``)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated

import typer

from mlrig.cli.options import (
    ConfigOpt,
    HomeOpt,
    JsonOpt,
    QuietOpt,
    collector_paused,
    quiet_libraries,
    settings_from,
)
from mlrig.cli.summary import print_result
from mlrig.redact import redact_url

if TYPE_CHECKING:
    from mlrig.pipeline.loop import LoopResult

ModelOpt = Annotated[
    str | None,
    typer.Option("--model", help="Registered model name (default: tracking.model_name)."),
]


def retrain_command(
    model: ModelOpt = None,
    since: Annotated[
        str | None,
        typer.Option(
            help="Labelled production rows logged since (ISO time or 30m/12h/7d); default loop.since (all)."
        ),
    ] = None,
    config: ConfigOpt = None,
    home: HomeOpt = None,
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Retrain on the training source plus the labelled production rows, gate on the frozen set
    and the newest production rows (held out), promote if better."""
    from rich.console import Console

    from mlrig.config import parse_since
    from mlrig.pipeline.loop import retrain

    quiet_libraries()
    settings = settings_from(
        config, home, {"tracking": {"model_name": model}, "loop": {"since": since}}
    )
    start = parse_since(settings.loop.since, "--since" if since else "loop.since")
    if quiet or as_json:
        result = retrain(settings, start)
    else:
        err = Console(stderr=True)
        err.print(
            f"[bold]mlrig retrain[/] {settings.tracking.model_name} → "
            f"{redact_url(settings.tracking_uri)}"
        )
        with err.status("starting") as status:
            result = retrain(settings, start, on_step=lambda s: status.update(f"{s}…"))
    print_result(result, quiet=quiet, as_json=as_json)


def loop_command(
    model: ModelOpt = None,
    config: ConfigOpt = None,
    home: HomeOpt = None,
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """One pass of the closed loop: monitor → policy → (retrain → gate → promote), with the
    decision trail. Exit 0 whatever it decided; non-zero only when a step failed."""
    from rich.console import Console

    from mlrig.pipeline.loop import loop_pass

    quiet_libraries()
    settings = settings_from(config, home, {"tracking": {"model_name": model}})
    with collector_paused():
        if quiet or as_json:
            result = loop_pass(settings)
        else:
            with Console(stderr=True).status("monitor…") as status:
                result = loop_pass(settings, on_step=lambda s: status.update(f"{s}…"))
    if as_json:
        typer.echo(json.dumps(result.as_dict(), indent=2, default=str))
    elif quiet:
        typer.echo(f"{result.model} {result.outcome} version={result.version or '-'}")
    else:
        print_trail(result)


def print_trail(result: LoopResult) -> None:
    from rich.console import Console
    from rich.markup import escape

    from mlrig.cli.summary import gate_lines

    out = Console(soft_wrap=True, highlight=False)
    out.print(f"[bold]loop[/] {result.model} ({result.trigger}) started {result.started_at}")
    for s in result.steps:
        detail = f"  {escape(s['detail'])}" if s["detail"] else ""
        out.print(f"  {s['step']:<26} {s['seconds']:>7.2f} s{detail}")
        if s["step"] == "gate":
            for line in gate_lines(result.gate or {}):
                out.print(f"  {'':<36}{escape(line)}")
    out.print(f"outcome   [bold]{result.outcome}[/] — {escape(result.reason)}")
    if result.run_id:
        out.print(f"mlflow    run {result.run_id} in experiment '{result.model}-loop'")
