"""The training pipeline composed from its steps.

``train_pipeline`` runs load → validate → prepare → train → evaluate → log/register → promote
through a ``call`` hook: a direct call in-process, or a Prefect task in flows.py. Both modes run
exactly this code, so their results and MLflow records are the same. Nothing is registered
until every earlier step has succeeded (including scoring the current champion).
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, TypeVar

from mlrig.config import Settings
from mlrig.pipeline.publish import fail_run, log_register_step, promote_step, recover_step
from mlrig.pipeline.results import Fitted, Prepared, RunResult, ValidatedData
from mlrig.pipeline.steps import (
    champion_step,
    evaluate_step,
    gate_step,
    load_step,
    prepare_step,
    production_step,
    train_step,
    validate_step,
)
from mlrig.redact import redact_url

T = TypeVar("T")
StepCall = Callable[..., Any]
OnStep = Callable[[str], None]
Trainer = Callable[[ValidatedData, Prepared, Settings], Fitted]


def direct_call(fn: Callable[..., T], *args: Any) -> T:
    return fn(*args)


@dataclass(frozen=True)
class Retrain:
    """Make the run a retrain: add the labelled production rows logged since ``since`` (None:
    all), hold the newest out as the gate's recent slice."""

    since: dt.datetime | None = None


def train_pipeline(
    settings: Settings,
    mode: str = "local",
    call: StepCall = direct_call,
    on_step: OnStep | None = None,
    trainer: Trainer = train_step,
    retrain: Retrain | None = None,
) -> RunResult:
    """Run every step through ``call``; ``on_step`` hears each step's name before it starts.

    ``trainer`` produces the model (one fit for ``mlrig run``, a study for ``mlrig tune``);
    every other step is shared, so both go through the same evaluation set and gate.
    ``retrain`` adds the labelled production rows and the recent slice.
    """
    seconds: dict[str, float] = {}

    def step(label: str, fn: Callable[..., T], *args: Any) -> T:
        if on_step:
            on_step(label)
        t0 = time.perf_counter()
        out: T = call(fn, *args)
        seconds[label] = round(time.perf_counter() - t0, 3)
        return out

    step("recover", recover_step, settings)  # what a killed run of this model left open
    table = step("load", load_step, settings)
    production = since = None
    if retrain is not None:
        since = retrain.since
        production = step("production rows", production_step, settings, since)
    data = step("validate", validate_step, table, settings, production, since)
    prepared = step("prepare", prepare_step, data, settings)
    fitted = step("train", trainer, data, prepared, settings)
    try:
        evaluation = step("evaluate", evaluate_step, fitted, prepared, data.schema, settings)
        champion = step("score champion", champion_step, settings, prepared, data.schema)
        decision = gate_step(evaluation, champion, prepared, data.schema, settings)
        registered = step(
            "log + register",
            log_register_step,
            settings,
            data,
            prepared,
            fitted,
            evaluation,
            decision,
        )
    except BaseException:
        if fitted.run_id is not None:
            fail_run(settings, fitted.run_id)
        raise
    try:
        decision = step("promote", promote_step, settings, registered, decision, champion)
    except BaseException:
        fail_run(settings, registered.run_id)
        raise
    promoted = decision.promote
    schema = data.schema
    return RunResult(
        mode=mode,
        task=schema.task,
        data_source=data.source,
        data_digest=data.digest,
        rows=len(data.frame),
        train_rows=len(prepared.x_train),
        test_rows=len(prepared.x_eval),
        eval_set=prepared.eval_note,
        features=schema.features,
        categorical=schema.categorical,
        target=schema.target,
        params={**fitted.spec.as_params(), **fitted.extra_params},
        metrics=evaluation.metrics,
        run_id=registered.run_id,
        experiment=registered.experiment,
        model_name=settings.tracking.model_name,
        version=registered.version,
        promoted=promoted,
        champion_version=registered.version if promoted else champion.version,
        decision=asdict(decision),
        tracking_uri=redact_url(settings.tracking_uri),  # results are shown and may be stored
        notes=[n for n in (data.note,) if n],
        step_seconds=seconds,
        production=None if data.production is None else data.production.summary(),
    )
