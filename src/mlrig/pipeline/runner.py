"""Choose how a pipeline runs: through Prefect when an API is configured, else in-process."""

from __future__ import annotations

import os
from typing import Any

from mlrig.config import Settings
from mlrig.errors import MlrigError
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


def flow_overrides(settings: Settings) -> dict[str, Any]:
    """``settings`` as flow parameters (JSON), from which a flow run rebuilds them exactly.

    Secrets stay out: Prefect stores and shows parameters; the run reads them from its
    environment as any mlrig process does."""
    return settings.model_dump(
        mode="json", exclude={"home": True, "serving": {"admin_token", "predict_token"}}
    )


def run_training(
    settings: Settings, on_step: OnStep | None = None, trainer: Trainer = train_step
) -> RunResult:
    """Run the training pipeline once; in prefect mode as a run of ``flows.train_flow``.

    Raises MlrigError when another process holds the model's training lease (prefect mode)."""
    if choose_mode(settings) == "prefect":
        from mlrig.pipeline.flows import Skipped, in_process_hooks, train_flow

        with in_process_hooks(on_step, trainer):
            out = train_flow(
                home=str(settings.home_dir),
                overrides=flow_overrides(settings),
                trainer=trainer.__name__.removesuffix("_step"),
            )
        if isinstance(out, Skipped):
            raise MlrigError(f"model {out.model_name!r}: {out.reason}")
        return out
    return train_pipeline(settings, mode="local", on_step=on_step, trainer=trainer)
