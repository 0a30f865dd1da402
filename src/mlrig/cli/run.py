"""``mlrig run``: the training pipeline, with progress and a summary."""

from __future__ import annotations

from typing import Annotated

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
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            "-m",
            help="Model family: elasticnet, ridge, logistic, random_forest, "
            "hist_gradient_boosting (default: auto by task).",
        ),
    ] = None,
    alpha: Annotated[float | None, typer.Option(help="ElasticNet/Ridge alpha.")] = None,
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
    with collector_paused():
        from rich.console import Console
        from rich.markup import escape

        from mlrig.pipeline.runner import choose_mode, run_training
        from mlrig.redact import redact_url
        from mlrig.tracking.store import check_reachable

        quiet_libraries()
        settings = settings_from(
            config,
            home,
            {
                "data": {"source": data, "target": target, "separator": separator},
                "train": {"model": model, "alpha": alpha, "l1_ratio": l1_ratio},
                "tracking": {"experiment": experiment, "model_name": model_name},
                "pipeline": {"orchestrator": orchestrator},
            },
        )
        err = Console(stderr=True)
        show = not (quiet or as_json)
        if show:
            err.print(
                f"[bold]mlrig run[/] ({choose_mode(settings)} mode) → "
                f"{escape(redact_url(settings.tracking_uri))}"
            )
        # before the data is read: a dead store fails in seconds, not after loading and fitting
        check_reachable(settings)
        if show:
            with err.status("starting") as status:
                result = run_training(settings, on_step=lambda s: status.update(f"{s}…"))
        else:
            result = run_training(settings)
        print_result(result, quiet=quiet, as_json=as_json)
