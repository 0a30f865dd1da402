"""``mlrig tune``: an Optuna study whose best model goes through the champion gate."""

from __future__ import annotations

from typing import Annotated

import typer

from mlrig.cli.options import ConfigOpt, HomeOpt, JsonOpt, QuietOpt, quiet_libraries, settings_from
from mlrig.cli.summary import print_result
from mlrig.redact import redact_url


def tune_command(
    trials: Annotated[
        int | None, typer.Option("--trials", "-n", help="Finished trials the study should reach.")
    ] = None,
    timeout: Annotated[
        float | None, typer.Option(help="Stop starting new trials after this many seconds.")
    ] = None,
    model: Annotated[
        list[str] | None,
        typer.Option(
            "--model",
            "-m",
            help="Family to search (repeat for several): elasticnet, ridge, logistic, "
            "random_forest, hist_gradient_boosting.",
        ),
    ] = None,
    workers: Annotated[
        int | None, typer.Option("--workers", "-w", help="Processes sharing the study.")
    ] = None,
    study: Annotated[
        str | None, typer.Option(help="Study name (default: the registered model name).")
    ] = None,
    storage: Annotated[
        str | None, typer.Option(help="Optuna storage URL (default: SQLite in the mlrig home).")
    ] = None,
    data: Annotated[
        str | None, typer.Option("--data", "-d", help="CSV/Parquet path or http(s) URL.")
    ] = None,
    target: Annotated[str | None, typer.Option(help="Target column.")] = None,
    model_name: Annotated[
        str | None, typer.Option("--model-name", help="Registered model name.")
    ] = None,
    config: ConfigOpt = None,
    home: HomeOpt = None,
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Tune hyperparameters with Optuna (resumable, shareable study); register the best
    model and promote it if it beats the champion on the frozen evaluation set."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from mlrig.pipeline.runner import choose_mode, run_training
    from mlrig.pipeline.tuning import check_storage, make_tune_step
    from mlrig.tracking.store import check_reachable

    quiet_libraries()
    settings = settings_from(
        config,
        home,
        {
            "data": {"source": data, "target": target},
            "tune": {
                "trials": trials,
                "timeout": timeout,
                "models": model or None,
                "workers": workers,
                "study": study,
                "storage": storage,
            },
            "tracking": {"model_name": model_name},
        },
    )
    check_reachable(settings)  # a dead store fails in seconds, before the lease and the data
    check_storage(settings.tune_storage)  # likewise Optuna's, before any run is started
    if quiet or as_json:
        result = run_training(settings, trainer=make_tune_step())
    else:
        err = Console(stderr=True)
        err.print(
            f"[bold]mlrig tune[/] ({choose_mode(settings)} mode) → "
            f"{redact_url(settings.tracking_uri)}"
        )
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("best {task.fields[best]}"),
            TimeElapsedColumn(),
            console=err,
            transient=False,
        ) as progress:
            bar = progress.add_task("trials", total=settings.tune.trials, best="—")

            def on_progress(done: int, total: int, best: float | None) -> None:
                shown = "—" if best is None else f"{best:.4f}"
                progress.update(bar, completed=done, total=total, best=shown)

            def on_step(step: str) -> None:
                progress.update(bar, description=step)

            result = run_training(settings, on_step=on_step, trainer=make_tune_step(on_progress))
    print_result(result, quiet=quiet, as_json=as_json)
