"""The training pipeline's last steps, which publish what it made: close what a killed
training left, log the run and register its version (born pending, complete with its gate
record), and move the champion by compare-and-set. compose.py runs them after the gate.
"""

from __future__ import annotations

import contextlib
from typing import Any

from mlrig.config import Settings
from mlrig.pipeline.record import run_record, version_tags
from mlrig.pipeline.results import (
    ChampionScore,
    Evaluation,
    Fitted,
    Prepared,
    Registered,
    ValidatedData,
)
from mlrig.pipeline.rules import decision_tags
from mlrig.pipeline.steps import labelling_of
from mlrig.training.evaluate import GateDecision


def recover_step(settings: Settings) -> tuple[list[str], list[str]]:
    """Close what a killed training of this model left open (its RUNNING runs → KILLED, its
    versions with a pending record → failed). Runs first, under the training lease, so
    nothing else writes the model's runs now. Returns (runs killed, versions failed)."""
    import os

    from mlrig.tracking.registry import close_orphans
    from mlrig.tracking.store import ensure_experiment, open_client

    client = open_client(settings)
    experiment_id = ensure_experiment(client, settings)
    name = settings.tracking.model_name
    return close_orphans(
        client, name, experiment_id, lease_tag(settings), os.environ.get("MLFLOW_RUN_ID")
    )


def lease_tag(settings: Settings) -> str:
    """The training lease as a run tag: which store (password masked) and which lease."""
    from mlrig.predictions.locks import train_lock
    from mlrig.tracking.store import redact

    return f"{redact(settings.predictions_url)} {train_lock(settings.tracking.model_name)}"


def log_register_step(
    settings: Settings,
    data: ValidatedData,
    prepared: Prepared,
    fitted: Fitted,
    evaluation: Evaluation,
    decision: GateDecision,
) -> Registered:
    """Log the run and register its model as a new version tagged with the gate decision.

    The version is born with its record marked pending (in the same transaction as the gate
    tags), marked complete once the evaluation-set tag is written, and only then becomes the
    challenger; the run stays RUNNING until the pipeline finishes it after the promotion. A
    failure after registration marks the version failed and the run FAILED, so nothing is
    left looking usable without its full record.
    """
    from dataclasses import replace

    from mlrig.tracking.evalset import remember_eval_set
    from mlrig.tracking.registry import (
        CHALLENGER,
        delete_alias,
        mark_record,
        register_version,
        set_alias,
    )
    from mlrig.tracking.runs import end_run, git_commit, log_training_run
    from mlrig.tracking.store import ensure_experiment, open_client
    from mlrig.tracking.tags import EVAL_SET_LABELLING, LEASE, MODEL, RECORD, RecordState

    client = open_client(settings)
    experiment_id = ensure_experiment(client, settings)
    name = settings.tracking.model_name
    record = run_record(
        data,
        prepared,
        fitted,
        evaluation,
        decision,
        git_commit(),
        settings.monitoring.reference_rows,
    )
    own = {
        MODEL: name,
        LEASE: lease_tag(settings),
        EVAL_SET_LABELLING: labelling_of(data.schema, settings),
    }
    record = replace(record, tags={**record.tags, **own})
    run = log_training_run(
        client, experiment_id, record, fitted.model, run_id=fitted.run_id, finish=False
    )
    version = None
    try:
        tags = {**version_tags(decision, data.schema.task), RECORD: RecordState.PENDING}
        version = register_version(client, name, run.model_uri, run.run_id, tags=tags)
        if prepared.eval_run_id is None:  # the first set, or one for new data: later runs use it
            remember_eval_set(
                client, name, run.run_id, prepared.eval_digest, labelling_of(data.schema, settings)
            )
        mark_record(client, name, version, RecordState.COMPLETE)
        set_alias(client, name, CHALLENGER, version)
    except BaseException:
        if version is not None:
            with _best_effort():
                mark_record(client, name, version, RecordState.FAILED)
                delete_alias(client, name, CHALLENGER)
        with _best_effort():
            end_run(client, run.run_id, "FAILED")
        raise
    experiment = settings.tracking.experiment
    if run.experiment_id != experiment_id:
        experiment = client.get_experiment(run.experiment_id).name
    return Registered(run.run_id, experiment, version)


def _best_effort() -> contextlib.AbstractContextManager[None]:
    """Cleanup after a failure must not hide the failure itself."""
    return contextlib.suppress(Exception)


def promote_step(
    settings: Settings,
    registered: Registered,
    decision: GateDecision,
    champion: ChampionScore,
) -> GateDecision:
    """Move ``champion`` to the new version when the gate said so, then finish the run.

    The move is a compare-and-set under the model's promotion lease: if the champion is no
    longer the version this run scored (another run, machine or a hand promotion moved it
    meanwhile), the challenger is NOT promoted; the decision returned (and tagged on the run
    and version) says why. Returns the decision that applied.
    """
    from dataclasses import replace

    from mlrig.pipeline.runner import promotion_lease
    from mlrig.tracking.registry import (
        CHAMPION,
        ChampionMovedError,
        alias_version,
        move_champion,
    )
    from mlrig.tracking.runs import end_run
    from mlrig.tracking.store import open_client

    client = open_client(settings)
    name = settings.tracking.model_name
    if decision.promote:
        try:
            with promotion_lease(settings, name, f"gate of version {registered.version}"):
                move_champion(
                    client,
                    name,
                    registered.version,
                    "gate",
                    "mlrig",
                    decision.reason,
                    expected=champion.version,
                )
        except ChampionMovedError as exc:
            decision = replace(decision, promote=False, reason=f"{decision.reason}; but {exc}")
            _retag(client, name, registered, decision)
        except BaseException as exc:  # the lease busy, the store down: say so, then fail
            if alias_version(client, name, CHAMPION) != registered.version:
                failed = replace(
                    decision, promote=False, reason=f"{decision.reason}; not promoted: {exc}"
                )
                with _best_effort():
                    _retag(client, name, registered, failed)
            raise
    end_run(client, registered.run_id, "FINISHED")
    return decision


def _retag(client: Any, name: str, registered: Registered, decision: GateDecision) -> None:
    """The decision that applied, on the version and its run (the gate's first one said
    promote)."""
    for key, value in decision_tags(decision).items():
        client.set_model_version_tag(name, registered.version, key, value)
        client.set_tag(registered.run_id, key, value)


def fail_run(settings: Settings, run_id: str) -> None:
    """Mark the open run ``run_id`` FAILED (a step after training raised)."""
    from mlrig.tracking.runs import end_run
    from mlrig.tracking.store import open_client

    end_run(open_client(settings), run_id, "FAILED")
