"""Choose how a pipeline runs: through Prefect when an API is configured, else in-process."""

from __future__ import annotations

import os

from mlrig.config import Settings
from mlrig.pipeline.compose import OnStep, Trainer, train_pipeline
from mlrig.pipeline.results import RunResult
from mlrig.pipeline.steps import train_step


def choose_mode(settings: Settings) -> str:
    """``prefect`` when asked to, or when ``PREFECT_API_URL`` is set; ``local`` otherwise.

    A one-off run never starts Prefect's ephemeral server (+12–20 s, shared/FACTS.md).
    """
    wanted = settings.pipeline.orchestrator
    if wanted == "auto":
        return "prefect" if os.environ.get("PREFECT_API_URL") else "local"
    return wanted


def run_training(
    settings: Settings, on_step: OnStep | None = None, trainer: Trainer = train_step
) -> RunResult:
    if choose_mode(settings) == "prefect":
        from mlrig.pipeline.flows import run_with_prefect

        return run_with_prefect(settings, on_step=on_step, trainer=trainer)
    return train_pipeline(settings, mode="local", on_step=on_step, trainer=trainer)
