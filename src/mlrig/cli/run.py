"""``mlrig run``: the training pipeline, with progress and a summary."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from mlrig.cli.options import ConfigOpt, HomeOpt, JsonOpt, QuietOpt, quiet_libraries, settings_from


def run_command(
    data: Annotated[
        str | None,
        typer.Option(
            "--data", "-d", help="CSV/Parquet path or http(s) URL (default: embedded red wine)."
        ),
    ] = None,
    target: Annotated[str | None, typer.Option(help="Target column (default: quality).")] = None,
    separator: Annotated[
        str | None, typer.Option("--sep", help="CSV separator (default: auto-detect).")
    ] = None,
    alpha: Annotated[float | None, typer.Option(help="ElasticNet alpha.")] = None,
    l1_ratio: Annotated[
        float | None, typer.Option("--l1-ratio", help="ElasticNet l1_ratio.")
    ] = None,
    experiment: Annotated[str | None, typer.Option(help="MLflow experiment name.")] = None,
    model_name: Annotated[
        str | None, typer.Option("--model-name", help="Registered model name.")
    ] = None,
    orchestrator: Annotated[str | None, typer.Option(help="auto | prefect | local.")] = None,
    config: ConfigOpt = None,
    home: HomeOpt = None,
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Train, evaluate, track and register a model; promote it to champion if it is better."""
    from rich.console import Console

    from mlrig.pipeline.runner import choose_mode, run_training

    quiet_libraries()
    settings = settings_from(
        config,
        home,
        {
            "data": {"source": data, "target": target, "separator": separator},
            "train": {"alpha": alpha, "l1_ratio": l1_ratio},
            "tracking": {"experiment": experiment, "model_name": model_name},
            "pipeline": {"orchestrator": orchestrator},
        },
    )
    err = Console(stderr=True)
    show = not (quiet or as_json)
    if show:
        err.print(f"[bold]mlrig run[/] ({choose_mode(settings)} mode) → {settings.tracking_uri}")
        with err.status("starting") as status:
            result = run_training(settings, on_step=lambda s: status.update(f"{s}…"))
    else:
        result = run_training(settings)
    if as_json:
        typer.echo(json.dumps(result.as_dict(), indent=2))
        return
    out = Console(soft_wrap=True)  # long paths must stay on one line when piped
    m = result.metrics
    if quiet:
        out.print(
            f"{result.model_name} v{result.version} run {result.run_id} rmse {m['rmse']:.4f} "
            f"champion={'yes' if result.promoted else 'no'}"
        )
        return
    d = result.decision
    out.print(
        f"data      {result.data_source} ({result.rows} rows: {result.train_rows} train / "
        f"{result.test_rows} held out, digest {result.data_digest})"
    )
    out.print(f"metrics   rmse {m['rmse']:.4f}  mae {m['mae']:.4f}  r2 {m['r2']:.4f}")
    out.print(
        f"mlflow    run {result.run_id} in experiment {result.experiment!r} ({result.mode} mode)"
    )
    out.print(f"registry  {result.model_name} version {result.version}")
    verdict = (
        "[green]promoted to champion[/]"
        if result.promoted
        else (f"[yellow]not promoted[/]: champion stays version {result.champion_version}")
    )
    out.print(f"gate      {verdict} — {d['reason']}")
    out.print("next      mlrig models list · mlrig ui · mlrig serve")
