"""What a training run records in MLflow, assembled before MLflow is touched.

``run_record`` gathers the params, metrics, tags, datasets, input example and artifacts of one
run into a ``RunRecord``; ``version_tags`` are the tags its registered model version carries.
Both are pure: tracking/runs.py writes the record, steps.py decides when.
"""

from __future__ import annotations

import json
from typing import Any

from mlrig._version import __version__
from mlrig.monitoring.profile import build_profile
from mlrig.pipeline.results import Evaluation, Fitted, Prepared, ValidatedData
from mlrig.pipeline.rules import decision_tags
from mlrig.tracking.evalset import EVAL_SET_ARTIFACT, to_parquet
from mlrig.tracking.runs import RunRecord
from mlrig.tracking.tags import TASK, encode_run
from mlrig.training.evaluate import FROZEN, GateDecision

EXAMPLE_ROWS = 5  # rows of the input example logged with the model
RETRAIN_ROWS_ARTIFACT = "retrain/rows.json"  # ids of the production rows used, and where
RECENT_SLICE_ARTIFACT = "retrain/recent_slice.parquet"  # the rows the gate judged on


def run_record(
    data: ValidatedData,
    prepared: Prepared,
    fitted: Fitted,
    evaluation: Evaluation,
    decision: GateDecision,
    commit: str | None,
    reference_rows: int = 5000,
) -> RunRecord:
    """Everything the run logs; ``commit`` is the git HEAD the code ran from (None: unknown).

    With the model goes its reference profile for monitoring (up to ``reference_rows``
    training rows, feature statistics, its predictions on the evaluation set).

    The evaluation set goes into the artifacts only when this run draws it
    (``prepared.eval_run_id`` None); otherwise the tags name the run that stored it.
    """
    schema = data.schema
    tags = {
        **encode_run(
            __version__,
            schema.task,
            data.digest,
            data.source,
            prepared.eval_digest,
            prepared.eval_run_id,
        ),
        **decision_tags(decision),
    }
    if commit:
        tags["mlflow.source.git.commit"] = commit
    params: dict[str, Any] = {
        **fitted.spec.as_params(),
        **fitted.extra_params,
        "task": schema.task,
        "target": schema.target,
        "categorical": ",".join(schema.categorical) or "-",
        "train_rows": len(prepared.x_train),
        "eval_rows": len(prepared.x_eval),
    }
    metrics = {**evaluation.metrics, **fitted.extra_metrics}
    metrics.update({f"recent_{k}": v for k, v in evaluation.recent_metrics.items()})
    for scored in decision.sets:
        if scored.champion is not None:
            suffix = "same_eval_set" if scored.name == FROZEN else "recent_slice"
            metrics[f"champion_{decision.metric}_{suffix}"] = scored.champion
    artifacts = {f"plots/{k}": v for k, v in evaluation.plots.items()}
    eval_frame = prepared.x_eval.assign(**{schema.target: prepared.y_eval})
    if prepared.eval_run_id is None:
        artifacts[EVAL_SET_ARTIFACT] = to_parquet(eval_frame)
    prod = data.production
    if prod is not None:  # a retrain says exactly which logged predictions it learned from
        params.update(
            production_train_rows=len(prod.train),
            production_recent_rows=len(prod.recent),
            production_since=prod.since or "all",
        )
        rows = {**prod.summary(), "train_ids": prod.train_ids, "recent_ids": prod.recent_ids}
        artifacts[RETRAIN_ROWS_ARTIFACT] = json.dumps(rows, indent=1).encode()
        if len(prod.recent):
            artifacts[RECENT_SLICE_ARTIFACT] = to_parquet(prod.recent)
    profile = build_profile(
        prepared.x_train,
        fitted.model.predict(prepared.x_eval),
        schema.task,
        schema.categorical,
        reference_rows,
    )
    artifacts.update(profile.to_files())
    example = prepared.x_train.head(EXAMPLE_ROWS)
    return RunRecord(
        params=params,
        metrics=metrics,
        tags=tags,
        train_frame=prepared.x_train.assign(**{schema.target: prepared.y_train}),
        eval_frame=eval_frame,
        data_source=data.source,
        target=schema.target,
        x_example=example,
        y_example=fitted.model.predict(example),
        artifacts=artifacts,
    )


def version_tags(decision: GateDecision, task: str) -> dict[str, str]:
    """Tags of the registered model version: the gate decision and the task it was trained for
    (``mlrig models show`` reads them without opening the run)."""
    return {**decision_tags(decision), TASK: task}
