"""Log one training run to MLflow: params, metrics, datasets (lineage), tags and the model."""

from __future__ import annotations

import importlib.metadata as md
import subprocess
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd
    from mlflow import MlflowClient

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
) -> LoggedRun:
    """Log ``record`` and ``model`` into a new run, or into the open run ``run_id`` (tune's
    parent run), and finish it; a failure marks the run FAILED."""
    import tempfile

    import mlflow
    import mlflow.sklearn
    from mlflow.data.pandas_dataset import from_pandas
    from mlflow.models import infer_signature

    with (
        warnings.catch_warnings(),
        mlflow.start_run(run_id=run_id, experiment_id=experiment_id, tags=record.tags) as run,
    ):
        # Integer class labels make MLflow hint that integers cannot hold NaN; labels never do.
        warnings.filterwarnings("ignore", "Hint: Inferred schema contains integer", UserWarning)
        signature = infer_signature(record.x_example, record.y_example)
        if run_id is not None:
            mlflow.set_tags(record.tags)
        mlflow.log_params(record.params)
        mlflow.log_metrics(record.metrics)
        name = record.data_source.rsplit("/", 1)[-1]
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
            mlflow.log_input(dataset, context=context)
        if record.artifacts:
            with tempfile.TemporaryDirectory() as tmp:
                for rel, content in record.artifacts.items():
                    path = Path(tmp, rel)
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_bytes(content)
                mlflow.log_artifacts(tmp)
        info = mlflow.sklearn.log_model(
            model,
            name=MODEL_ARTIFACT,
            signature=signature,
            input_example=record.x_example.head(5),
            pip_requirements=pip_requirements(),
            skops_trusted_types=trusted_types(model),
        )
    return LoggedRun(run.info.run_id, info.model_uri, str(run.info.experiment_id))


def start_parent_run(
    client: MlflowClient, experiment_id: str, run_name: str, tags: dict[str, str]
) -> tuple[str, str]:
    """(run id, experiment id) of an open run that trial runs nest under and the final model
    is logged into: the run `mlflow run` opened for us (``MLFLOW_RUN_ID``), else a new one."""
    import os

    outer = os.environ.get("MLFLOW_RUN_ID")
    if outer:
        for key, value in tags.items():
            client.set_tag(outer, key, value)
        return outer, str(client.get_run(outer).info.experiment_id)
    run = client.create_run(experiment_id, run_name=run_name, tags=tags)
    return str(run.info.run_id), experiment_id


def end_run(client: MlflowClient, run_id: str, status: str = "FINISHED") -> None:
    client.set_terminated(run_id, status)
