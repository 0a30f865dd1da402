"""The training pipeline as a Prefect 3 flow: one task per step, no logic of its own."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mlrig.config import Settings
from mlrig.pipeline.compose import OnStep, Trainer, train_pipeline
from mlrig.pipeline.results import RunResult
from mlrig.pipeline.steps import train_step

FLOW_NAME = "mlrig-train"


def run_with_prefect(
    settings: Settings, on_step: OnStep | None = None, trainer: Trainer = train_step
) -> RunResult:
    """Run the pipeline as a Prefect flow run (needs a reachable Prefect API)."""
    from prefect import flow, task
    from prefect.cache_policies import NO_CACHE

    tasks: dict[Callable[..., Any], Any] = {}

    def call(fn: Callable[..., Any], *args: Any) -> Any:
        if fn not in tasks:
            # Inputs are DataFrames and models: never cache or hash them.
            tasks[fn] = task(name=fn.__name__.removesuffix("_step"), cache_policy=NO_CACHE)(fn)
        return tasks[fn](*args)

    @flow(name=FLOW_NAME, log_prints=False, validate_parameters=False)
    def mlrig_train(
        data: str, target: str, trainer: str, model: str, params: dict[str, Any], model_name: str
    ) -> RunResult:
        return train_pipeline(
            settings, mode="prefect", call=call, on_step=on_step, trainer=trainer_fn
        )

    trainer_fn = trainer
    t = settings.train
    return mlrig_train(
        data=settings.data.source or "embedded:winequality-red.csv",
        target=settings.data.target,
        trainer=trainer.__name__.removesuffix("_step"),
        model=settings.train.model,
        params={
            **{k: v for k, v in (("alpha", t.alpha), ("l1_ratio", t.l1_ratio)) if v is not None},
            **t.params,
        },
        model_name=settings.tracking.model_name,
    )
