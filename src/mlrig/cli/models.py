"""``mlrig models``: inspect the registry; move the champion by hand, with a reason."""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

import typer

from mlrig.cli.options import ConfigOpt, HomeOpt, JsonOpt, quiet_libraries, settings_from

app = typer.Typer(
    help="Inspect registered models; promote or roll back the champion.", no_args_is_help=True
)

NameArg = Annotated[str, typer.Argument(help="Registered model name.")]
ReasonOpt = Annotated[
    str, typer.Option("--reason", "-r", help="Why (recorded in the registry with your name).")
]


def _client(config: Path | None, home: Path | None) -> Any:
    from mlrig.tracking.store import open_client

    quiet_libraries()
    return open_client(settings_from(config, home))


def _metric_keys() -> tuple[str, ...]:
    from mlrig.training.evaluate import METRICS

    return tuple(m for task in METRICS.values() for m in task)


def _metrics_text(metrics: dict[str, float]) -> str:
    return "  ".join(f"{k} {v:.4f}" for k, v in metrics.items())


@app.command("list")
def list_command(config: ConfigOpt = None, home: HomeOpt = None, as_json: JsonOpt = False) -> None:
    """Registered models with versions, aliases and their metrics, newest first."""
    from rich.console import Console
    from rich.table import Table

    from mlrig.tracking.registry import list_versions

    versions = list_versions(_client(config, home), _metric_keys())
    if as_json:
        typer.echo(json.dumps([asdict(v) for v in versions], indent=2))
        return
    if not versions:
        Console().print("no registered models yet: run `mlrig run`")
        return
    table = Table("model", "version", "aliases", "metrics (evaluation set)", "run id")
    for v in versions:
        table.add_row(v.name, v.version, ", ".join(v.aliases), _metrics_text(v.metrics), v.run_id)
    Console(soft_wrap=True).print(table)


@app.command("show")
def show_command(
    name: NameArg,
    config: ConfigOpt = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """One model: every version with its gate decision, and the champion's history."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from mlrig.cli.summary import gate_lines
    from mlrig.errors import ModelNotFoundError
    from mlrig.tracking.registry import champion_history, list_versions, record_state, usable
    from mlrig.tracking.tags import TASK, decode_gate

    client = _client(config, home)
    versions = list_versions(client, _metric_keys(), name)
    if not versions:
        raise ModelNotFoundError(f"model {name!r}: not in the registry (see `mlrig models list`)")
    history = champion_history(client, name)
    if as_json:
        out = {
            "versions": [
                {
                    **asdict(v),
                    "gate": _asdict_or_none(decode_gate(v.tags)),
                    "record": record_state(v.tags),
                    "usable": usable(v.tags),
                }
                for v in versions
            ],
            "history": [asdict(h) for h in history],
        }
        typer.echo(json.dumps(out, indent=2))
        return
    console = Console(soft_wrap=True, highlight=False)
    table = Table("version", "aliases", "task", "gate", "metrics (evaluation set)", title=name)
    for v in versions:
        g = decode_gate(v.tags)
        gate = f"{'promoted' if g.promote else 'kept champion'}: {g.reason}" if g else "—"
        if g is not None:
            gate = "\n".join([gate, *gate_lines(asdict(g))])
        if not usable(v.tags):
            gate = f"INCOMPLETE — record {record_state(v.tags)}, not usable\n{gate}"
        table.add_row(
            v.version,
            ", ".join(v.aliases),
            v.tags.get(TASK, ""),
            escape(gate),
            _metrics_text(v.metrics),
        )
    console.print(table)
    if history:
        console.print("[bold]champion history[/] (newest last)")
        for h in history:
            came_from = f" (was {h.previous})" if h.previous else ""
            console.print(
                f"  {h.at}  v{h.version}{came_from}  {h.action} by {escape(h.by)}: "
                f"{escape(h.reason)}"
            )


def _asdict_or_none(value: Any) -> dict[str, Any] | None:
    return None if value is None else asdict(value)


def _who() -> str:
    import getpass

    return os.environ.get("MLRIG_USER") or getpass.getuser()


@app.command("promote")
def promote_command(
    name: NameArg,
    version: Annotated[str, typer.Argument(help="Version to make champion.")],
    reason: ReasonOpt,
    config: ConfigOpt = None,
    home: HomeOpt = None,
) -> None:
    """Make VERSION the champion, bypassing the gate; records who and why."""
    from mlrig.pipeline.runner import promotion_lease
    from mlrig.tracking.registry import model_version, move_champion
    from mlrig.tracking.store import open_client

    quiet_libraries()
    settings = settings_from(config, home)
    client = open_client(settings)
    with promotion_lease(settings, name, f"mlrig models promote {version}"):
        _check_usable(model_version(client, f"{name}/{version}"))  # also: a clear error if absent
        change = move_champion(client, name, version, "promote", _who(), reason)
    was = f" (was version {change.previous})" if change.previous else ""
    typer.echo(f"{name}: champion is now version {version}{was}")


def _check_usable(mv: Any) -> None:
    """A version whose record a run never completed (it died, or failed after registering)
    must not become champion by hand either: its gate record is missing."""
    from mlrig.errors import TrackingError
    from mlrig.tracking.registry import record_state, usable

    tags = dict(mv.tags or {})
    if not usable(tags):
        raise TrackingError(
            f"model {mv.name!r} version {mv.version}: its record is {record_state(tags)} (the "
            "run that registered it did not finish); not promoted"
        )


@app.command("rollback")
def rollback_command(
    name: NameArg,
    reason: ReasonOpt,
    config: ConfigOpt = None,
    home: HomeOpt = None,
) -> None:
    """Move the champion back to the version it replaced; records who and why."""
    from mlrig.pipeline.runner import promotion_lease
    from mlrig.tracking.registry import (
        CHAMPION,
        alias_version,
        model_version,
        move_champion,
        previous_champion,
    )
    from mlrig.tracking.store import open_client

    quiet_libraries()
    settings = settings_from(config, home)
    client = open_client(settings)
    with promotion_lease(settings, name, "mlrig models rollback"):
        current = alias_version(client, name, CHAMPION)
        target = previous_champion(client, name)
        _check_usable(model_version(client, f"{name}/{target}"))
        change = move_champion(client, name, target, "rollback", _who(), reason, expected=current)
    typer.echo(f"{name}: champion rolled back to version {target} (was {change.previous})")
