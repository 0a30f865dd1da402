"""The summary `mlrig run` and `mlrig tune` print: human lines, one quiet line, or JSON."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import typer

from mlrig.redact import redact_text, redact_url

if TYPE_CHECKING:
    from mlrig.pipeline.results import RunResult


def print_result(result: RunResult, *, quiet: bool, as_json: bool) -> None:
    from rich.console import Console
    from rich.markup import escape

    if as_json:
        typer.echo(json.dumps(shown_dict(result), indent=2))
        return
    out = Console(soft_wrap=True, highlight=False)  # long paths stay on one line when piped
    d = result.decision
    if quiet:
        out.print(
            f"{result.model_name} v{result.version} run {result.run_id} "
            f"{d['metric']} {d['challenger']:.4f} champion={'yes' if result.promoted else 'no'}"
        )
        return
    for note in result.notes:
        out.print(f"note      {escape(redact_text(note))}")
    out.print(
        f"data      {escape(redact_url(result.data_source))} ({result.rows} rows, {result.task}; "
        f"{result.train_rows} train / {result.test_rows} evaluation, digest {result.data_digest})"
    )
    out.print(f"eval set  {escape(result.eval_set)}")
    if result.production is not None:
        p = result.production
        out.print(
            f"prod rows {p['train_rows']} labelled production rows trained, {p['recent_rows']} "
            f"newest held out for the gate (logged {p['first_at'] or '—'} → {p['last_at'] or '—'}"
            f"{', since ' + p['since'] if p['since'] else ''})"
        )
    params = ", ".join(f"{k}={v}" for k, v in result.params.items() if k != "seed")
    out.print(f"model     {escape(params)}")
    out.print("metrics   " + "  ".join(f"{k} {v:.4f}" for k, v in result.metrics.items()))
    out.print(
        f"mlflow    run {result.run_id} in experiment {result.experiment!r} ({result.mode} mode)"
    )
    out.print(f"registry  {result.model_name} version {result.version}")
    verdict = (
        "[green]promoted to champion[/]"
        if result.promoted
        else f"[yellow]not promoted[/]: champion stays version {result.champion_version}"
    )
    out.print(f"gate      {verdict} — {escape(d['reason'])}")
    for line in gate_lines(d):
        out.print(f"          {escape(line)}")
    out.print(f"next      mlrig models show {result.model_name} · mlrig ui · mlrig serve")


def shown_dict(result: RunResult) -> dict[str, Any]:
    """The ``--json`` summary: ``result.as_dict()`` with the store and data URLs redacted
    (scripts read it, CI logs keep it)."""
    out = result.as_dict()
    out["tracking_uri"] = redact_url(out["tracking_uri"])
    out["data_source"] = redact_url(out["data_source"])
    out["notes"] = [redact_text(n) for n in out["notes"]]
    return out


def gate_lines(decision: dict[str, Any]) -> list[str]:
    """Both models' scores on every set the gate weighed, and the rule that picked one."""
    metric = decision.get("metric", "")
    lines = []
    for s in decision.get("sets") or ():
        champion = "—" if s.get("champion") is None else f"{s['champion']:.4f}"
        mark = " ← decided" if s["name"] == decision.get("governed_by") else ""
        lines.append(
            f"{s['name']:<7} {s['rows']:>6} rows: {metric} challenger {s['challenger']:.4f}, "
            f"champion {champion}{mark}"
        )
    if decision.get("rule") and lines:
        lines.append(str(decision["rule"]))
    return lines
