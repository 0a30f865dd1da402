"""Log one training run to MLflow: params, metrics, datasets (lineage), tags and the model.

Every call goes through the ``MlflowClient`` it is given: nothing here reads or sets MLflow's
process-wide tracking URI or active run, so two stores can be used in one process.
"""

from __future__ import annotations

import contextlib
import importlib.metadata as md
import os
import subprocess
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterator

    import pandas as pd
    from mlflow import MlflowClient
    from mlflow.entities import Run

MODEL_ARTIFACT = "model"
_REQUIREMENTS = ("mlflow", "scikit-learn", "numpy", "scipy", "pandas", "skops")


@dataclass(frozen=True)
class LoggedRun:
    run_id: str
    model_uri: str
    experiment_id: str


@dataclass(frozen=True)
class RunRecord:
    """Everything a training run logs, gathered before MLflow is touched."""

    params: dict[str, Any]
    metrics: dict[str, float]
    tags: dict[str, str]
    train_frame: pd.DataFrame
    eval_frame: pd.DataFrame
    data_source: str
    target: str
    x_example: pd.DataFrame
    y_example: Any
    artifacts: dict[str, bytes] = field(default_factory=dict)  # artifact path → content


def pip_requirements() -> list[str]:
    """Pinned requirements of the logged model; explicit, because MLflow's inference costs
    ≈10 s per run in a subprocess (shared/FACTS.md)."""
    out = []
    for name in _REQUIREMENTS:
        try:
            out.append(f"{name}=={md.version(name)}")
        except md.PackageNotFoundError:
            continue
    return out


# Types skops will not load unless told: mlrig created these files itself.
_SKOPS_TRUSTED = {
    "HistGradientBoosting": ["sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor"],
    "RandomForest": ["sklearn.tree._tree.Tree"],
}


def trusted_types(model: object) -> list[str] | None:
    """skops types to trust for ``model``'s own estimator (None = skops' defaults)."""
    text = repr(model)
    found = [t for key, types in _SKOPS_TRUSTED.items() if key in text for t in types]
    return found or None


def git_commit() -> str | None:
    """HEAD of the git checkout in the working directory, if there is one."""
    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() or None if done.returncode == 0 else None


def log_training_run(
    client: MlflowClient,
    experiment_id: str,
    record: RunRecord,
    model: object,
    run_id: str | None = None,
    finish: bool = True,
) -> LoggedRun:
    """Log ``record`` and ``model`` into a new run, or into the open run ``run_id`` (tune's
    parent run, or the run `mlflow run` opened: ``MLFLOW_RUN_ID``), and finish it (unless
    ``finish`` is False: the caller ends it once the rest of its record is written); a
    failure marks the run FAILED. Every write goes through ``client``."""
    from mlflow.data.pandas_dataset import from_pandas
    from mlflow.entities import DatasetInput, InputTag, Metric, Param
    from mlflow.models import infer_signature
    from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT
    from mlflow.utils.time import get_current_time_millis

    # As mlflow.start_run does, the run `mlflow run` opened is used once, then forgotten.
    outer = os.environ.pop("MLFLOW_RUN_ID", None)
    run = _open_run(client, experiment_id, record.tags, run_id or outer)
    run_id = str(run.info.run_id)
    try:
        with warnings.catch_warnings():
            # Integer class labels make MLflow hint that integers cannot hold NaN; labels never do.
            warnings.filterwarnings("ignore", "Hint: Inferred schema contains integer", UserWarning)
            signature = infer_signature(record.x_example, record.y_example)
        client.log_batch(run_id, params=[Param(k, str(v)) for k, v in record.params.items()])
        now = get_current_time_millis()
        client.log_batch(
            run_id, metrics=[Metric(k, v, now, 0, run_id=run_id) for k, v in record.metrics.items()]
        )
        name = record.data_source.rsplit("/", 1)[-1]
        inputs = []
        for frame, context in ((record.train_frame, "training"), (record.eval_frame, "evaluation")):
            with warnings.catch_warnings():
                # MLflow registers two identical local-file source classes and warns that a
                # path "can be interpreted in multiple ways"; either one records the same path.
                warnings.simplefilter("ignore", UserWarning)
                dataset = from_pandas(
                    frame,
                    source=record.data_source,
                    targets=record.target,
                    name=f"{name}:{context}",
                )
            inputs.append(
                DatasetInput(
                    dataset._to_mlflow_entity(), [InputTag(MLFLOW_DATASET_CONTEXT, context)]
                )
            )
        client.log_inputs(run_id, inputs)
        if record.artifacts:
            with tempfile.TemporaryDirectory() as tmp:
                write_files(tmp, record.artifacts)
                client.log_artifacts(run_id, tmp)
        model_uri = _log_model(client, run, model, signature, record.x_example.head(5))
    except BaseException:
        client.set_terminated(run_id, "FAILED")
        raise
    if finish:
        client.set_terminated(run_id, "FINISHED")
    return LoggedRun(run_id, model_uri, str(run.info.experiment_id))


def _open_run(
    client: MlflowClient, experiment_id: str, tags: dict[str, str], run_id: str | None
) -> Run:
    """The run to log into, RUNNING and tagged with ``tags``: ``run_id`` resumed, else a new
    one in ``experiment_id`` with the context tags ``mlflow.start_run`` adds (user, source,
    git commit)."""
    from mlflow.entities import LifecycleStage, RunTag
    from mlflow.exceptions import MlflowException
    from mlflow.tracking.context.registry import resolve_tags

    if run_id is None:
        return client.create_run(experiment_id, tags=resolve_tags(dict(tags)))
    run = client.get_run(run_id)
    if run.info.lifecycle_stage == LifecycleStage.DELETED:
        raise MlflowException(f"Cannot log into run {run_id}: it is in the deleted state.")
    client.update_run(run_id, "RUNNING")
    if tags:
        client.log_batch(run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])
    return client.get_run(run_id)


def _log_model(
    client: MlflowClient, run: Run, model: object, signature: Any, example: pd.DataFrame
) -> str:
    """Log ``model`` as the run's MLflow 3 logged model (step 0) and return its
    ``models:/<model_id>`` URI.

    The steps of ``mlflow.sklearn.log_model`` (``Model.log``), with this client instead of the
    process-wide one: create the logged model with the run's params, link it as the run's
    output, attach the run's step-0 metrics to it, save the flavor locally, upload, mark it
    READY (FAILED on error). ``Model.log``'s serving-input check (it loads the saved model and
    only logs a warning) is left out.
    """
    import shutil

    import mlflow.sklearn
    from mlflow.entities import LoggedModelOutput, LoggedModelStatus, Metric
    from mlflow.models import Model
    from mlflow.tracking.context.registry import resolve_tags

    run_id = str(run.info.run_id)
    logged_so_far = client.get_run(run_id).data  # nothing below adds params or metrics
    params = {k: str(v) for k, v in logged_so_far.params.items()}
    logged = client.create_logged_model(
        str(run.info.experiment_id),
        name=MODEL_ARTIFACT,
        source_run_id=run_id,
        tags=resolve_tags(None),
        params=params,
    )
    model_id = str(logged.model_id)
    try:
        client.log_outputs(run_id, [LoggedModelOutput(model_id, step=0)])
        step0 = [
            Metric(
                m.key,
                m.value,
                m.timestamp,
                m.step,
                model_id=model_id,
                dataset_name=m.dataset_name,
                dataset_digest=m.dataset_digest,
                run_id=m.run_id,
            )
            for key in logged_so_far.metrics
            for m in client.get_metric_history(run_id, key)
            if m.step == 0 and m.model_id is None
        ]
        client.log_batch(run_id, metrics=step0)
        meta = Model(
            artifact_path=logged.artifact_location,
            model_uuid=model_id,
            run_id=run_id,
            model_id=model_id,
        )
        with tempfile.TemporaryDirectory() as tmp, _pins_not_rechecked():
            local = Path(tmp, "model")
            mlflow.sklearn.save_model(
                model,
                str(local),
                mlflow_model=meta,
                signature=signature,
                input_example=example,
                pip_requirements=pip_requirements(),
                skops_trusted_types=trusted_types(model),
            )
            for cache in local.rglob("__pycache__"):
                shutil.rmtree(cache, ignore_errors=True)
            client.log_model_artifacts(model_id, str(local))
    except Exception:
        client.finalize_logged_model(model_id, LoggedModelStatus.FAILED)
        raise
    client.finalize_logged_model(model_id, LoggedModelStatus.READY)
    return f"models:/{model_id}"


@contextlib.contextmanager
def _pins_not_rechecked() -> Iterator[None]:
    """MLflow's ``save_model`` without its check of the pip requirements against the installed
    distributions, which can only warn and costs ≈0.3–0.8 s per process (it maps the files of
    every installed distribution to find their modules). Ours are pinned to the versions
    installed here (``pip_requirements``), so it finds nothing. The switch is process-wide
    for the duration of one save: a save in another thread at that moment would lose only the
    same warning."""
    import mlflow.utils.environment as env

    name = "warn_dependency_requirement_mismatches"
    saved = getattr(env, name, None)
    if saved is None:  # moved in a later MLflow: the check runs, which is only slower
        yield
        return
    setattr(env, name, lambda requirements: None)
    try:
        yield
    finally:
        setattr(env, name, saved)


def write_files(root: str, files: dict[str, bytes]) -> None:
    """Lay ``files`` (artifact path → content) out under ``root``, ready for log_artifacts."""
    for rel, content in files.items():
        path = Path(root, rel)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)


def start_parent_run(
    client: MlflowClient, experiment_id: str, run_name: str, tags: dict[str, str]
) -> tuple[str, str]:
    """(run id, experiment id) of an open run that trial runs nest under and the final model
    is logged into: the run `mlflow run` opened for us (``MLFLOW_RUN_ID``), else a new one."""
    outer = os.environ.get("MLFLOW_RUN_ID")
    if outer:
        for key, value in tags.items():
            client.set_tag(outer, key, value)
        return outer, str(client.get_run(outer).info.experiment_id)
    run = client.create_run(experiment_id, run_name=run_name, tags=tags)
    return str(run.info.run_id), experiment_id


def end_run(client: MlflowClient, run_id: str, status: str = "FINISHED") -> None:
    client.set_terminated(run_id, status)
