"""The closed loop: one pass is monitor → policy → (retrain → fair gate → promote).

A pass holds the model's ``loop:`` lease (two passes never overlap, whoever started them) and a
retrain holds its ``train:`` lease (never two retrains of one model at once); both live in the
prediction store and lapse when their holder crashes (predictions/locks.py). Every pass is
recorded in the store (the policy's history) and as an MLflow run in ``<model>-loop``; the
server picks a promoted version up by polling the registry.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any

from mlrig.config import Settings, parse_duration, parse_since
from mlrig.errors import MlrigError
from mlrig.pipeline.compose import OnStep, Retrain, StepCall, Trainer, direct_call, train_pipeline
from mlrig.pipeline.policy import Decision, History, Observation, Policy, decide
from mlrig.pipeline.results import RunResult
from mlrig.pipeline.steps import train_step
from mlrig.predictions import passes
from mlrig.predictions.locks import LockInfo, acquire, holder, loop_lock, train_lock
from mlrig.predictions.store import PredictionStore

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from mlrig.monitoring.assess import Assessment


@dataclass(frozen=True)
class LoopResult:
    """One pass; ``as_dict`` is ``mlrig loop --json`` and what the store and MLflow keep."""

    model: str
    trigger: str  # manual | schedule
    started_at: str
    outcome: str  # one of passes.OUTCOMES
    retrain: bool  # what the policy decided
    reason: str
    triggers: list[str] = field(default_factory=list)
    verdict: str | None = None  # monitoring's
    steps: list[dict[str, Any]] = field(default_factory=list)  # the decision trail
    version: str | None = None  # registered by the retrain
    promoted: bool = False
    champion_version: str | None = None
    gate: dict[str, Any] | None = None
    production: dict[str, Any] | None = None
    monitoring_result_id: int | None = None
    run_id: str | None = None  # the MLflow run of this pass
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def policy_from(settings: Settings) -> Policy:
    loop = settings.loop
    return Policy(
        loop.drift_share,
        loop.degradation,
        settings.monitoring.tolerance_mode,
        loop.new_labels,
        loop.always,
        parse_duration(loop.cooldown, "loop.cooldown"),
    )


def retrain(
    settings: Settings,
    since: dt.datetime | None = None,
    on_step: OnStep | None = None,
    call: StepCall = direct_call,
    trainer: Trainer = train_step,
    mode: str = "local",
) -> RunResult:
    """Train on the source plus the labelled production rows since ``since``, gate on the
    frozen set and the recent slice, promote if better. Raises BusyError while another
    training of the model holds its lease."""
    from mlrig.pipeline.runner import training_lease

    with training_lease(settings, "retrain"):
        return train_pipeline(settings, mode, call, on_step, trainer, Retrain(since))


def loop_pass(
    settings: Settings,
    trigger: str = "manual",
    on_step: OnStep | None = None,
    call: StepCall = direct_call,
    mode: str = "local",
) -> LoopResult:
    """Run one pass for ``settings.tracking.model_name``. A pass that finds another running
    returns at once (outcome busy); a retrain that fails is recorded, then raised."""
    model = settings.tracking.model_name
    started = dt.datetime.now(dt.UTC)
    t0 = time.perf_counter()
    store = PredictionStore(settings.predictions_url)
    try:
        store.create_schema()
        lease = acquire(store, loop_lock(model), f"mlrig loop ({trigger})", settings.loop.lock_ttl)
        if isinstance(lease, LockInfo):
            result = LoopResult(
                model,
                trigger,
                _iso(started),
                passes.BUSY,
                False,
                f"another pass is running: {lease.describe()}",
                seconds=round(time.perf_counter() - t0, 3),
            )
            _save(store, result, started)
            return result
        with lease:
            return _pass(settings, store, trigger, started, t0, on_step, call, mode)
    finally:
        store.close()


def _pass(
    settings: Settings,
    store: PredictionStore,
    trigger: str,
    started: dt.datetime,
    t0: float,
    on_step: OnStep | None,
    call: StepCall,
    mode: str,
) -> LoopResult:
    from mlrig.monitoring.monitor import monitor
    from mlrig.tracking.store import open_client

    model = settings.tracking.model_name
    trail: list[dict[str, Any]] = []

    def note(step: str, since: float, detail: str) -> None:
        trail.append(
            {"step": step, "seconds": round(time.perf_counter() - since, 3), "detail": detail}
        )

    if on_step:
        on_step("monitor")
    t = time.perf_counter()
    client = open_client(settings)
    watched = monitor(settings, client, store)
    a = watched.assessment
    note("monitor", t, f"verdict {a.verdict} over {a.window['rows']} predictions")
    t = time.perf_counter()
    policy = policy_from(settings)
    last = passes.last_retrain_at(store, model)
    labels = _labels_since(store, model, last) if policy.new_labels is not None else 0
    running = holder(store, train_lock(model))
    decision = decide(
        observation(a, labels),
        History(last, None if running is None else running.describe()),
        policy,
        dt.datetime.now(dt.UTC),
    )
    note("policy", t, decision.reason)
    base = {
        "model": model,
        "trigger": trigger,
        "started_at": _iso(started),
        "retrain": decision.retrain,
        "reason": decision.reason,
        "triggers": list(decision.triggers),
        "verdict": a.verdict,
        "steps": trail,
        "monitoring_result_id": watched.result_id,
    }
    if not decision.retrain:
        return _finish(settings, client, store, started, t0, base, passes.NO_RETRAIN, decision)
    t = time.perf_counter()
    try:
        run = retrain(
            settings,
            parse_since(settings.loop.since, "loop.since"),
            on_step,
            call,
            mode=mode,
        )
    except MlrigError as exc:
        note("retrain", t, f"failed: {exc}")
        _finish(settings, client, store, started, t0, base, passes.FAILED, decision)
        raise
    for name, seconds in run.step_seconds.items():
        if name != "promote":  # reported below, with what it did
            trail.append({"step": f"retrain: {name}", "seconds": seconds, "detail": ""})
    gate = run.decision
    trail.append({"step": "gate", "seconds": 0.0, "detail": gate["reason"]})
    trail.append(
        {
            "step": "promote" if run.promoted else "keep",
            "seconds": run.step_seconds.get("promote", 0.0),
            "detail": f"version {run.version} "
            + (
                "is the champion now"
                if run.promoted
                else f"registered; champion stays {run.champion_version}"
            ),
        }
    )
    base.update(
        version=run.version,
        promoted=run.promoted,
        champion_version=run.champion_version,
        gate=gate,
        production=run.production,
    )
    outcome = passes.PROMOTED if run.promoted else passes.KEPT
    return _finish(settings, client, store, started, t0, base, outcome, decision)


def observation(a: Assessment, labels_since_retrain: int) -> Observation:
    """The policy's view of an assessment: the newest version in the window (the one being
    served; an older version's rows say nothing about today's model)."""
    v = a.latest
    if v is None:
        return Observation(a.verdict, None, None, None, None, None, labels_since_retrain)
    q = v.quality
    return Observation(
        a.verdict,
        v.version,
        None if v.drift is None else v.drift.share,
        q.metric,
        q.live,
        q.offline,
        labels_since_retrain,
    )


def _labels_since(store: PredictionStore, model: str, last: dt.datetime | None) -> int:
    from mlrig.predictions.labelled import FEEDBACK_AT, read_labelled

    rows = read_labelled(store, model)
    if rows.empty or last is None:
        return len(rows)
    return int((rows[FEEDBACK_AT] > last).sum())


def _finish(
    settings: Settings,
    client: MlflowClient,
    store: PredictionStore,
    started: dt.datetime,
    t0: float,
    base: dict[str, Any],
    outcome: str,
    decision: Decision,
) -> LoopResult:
    result = LoopResult(
        **{**base, "outcome": outcome, "seconds": round(time.perf_counter() - t0, 3)}
    )
    result = replace(result, run_id=_log_run(settings, client, result, decision))
    _save(store, result, started)
    return result


def _save(store: PredictionStore, result: LoopResult, started: dt.datetime) -> None:
    passes.save_pass(
        store,
        passes.PassRecord(
            result.model,
            started,
            dt.datetime.now(dt.UTC),
            result.trigger,
            result.retrain,
            result.outcome,
            result.version,
            json.dumps(result.as_dict(), default=str),
        ),
    )


def _log_run(
    settings: Settings, client: MlflowClient, result: LoopResult, decision: Decision
) -> str:
    from mlrig.tracking import tags
    from mlrig.tracking.monitoring import log_monitoring_run
    from mlrig.tracking.store import ensure_experiment

    metrics = {f"seconds.{s['step']}": float(s["seconds"]) for s in result.steps}
    metrics["seconds"] = result.seconds
    metrics["retrain"] = float(result.retrain)
    metrics["promoted"] = float(result.promoted)
    return log_monitoring_run(
        client,
        ensure_experiment(client, settings, f"{result.model}-loop"),
        f"loop-{result.model}-{result.outcome}",
        {
            tags.MODEL: result.model,
            tags.MODEL_VERSION: result.version or "",
            tags.LOOP_TRIGGER: result.trigger,
            tags.LOOP_OUTCOME: result.outcome,
        },
        {
            "trigger": result.trigger,
            "triggers": ",".join(decision.triggers) or "-",
            "reason": decision.reason,
            "verdict": result.verdict,
        },
        metrics,
        {"loop/result.json": json.dumps(result.as_dict(), indent=1, default=str).encode()},
    )


def _iso(when: dt.datetime) -> str:
    return when.isoformat(timespec="seconds")
