"""Log one training run to MLflow: params, metrics, datasets (lineage), tags and the model."""

from __future__ import annotations

import importlib.metadata as md
import subprocess
import warnings
from dataclasses import dataclass
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
    client: MlflowClient, experiment_id: str, record: RunRecord, model: object, run_name: str | None
) -> LoggedRun:
    """Create a finished run holding ``record`` and ``model``; a failure marks the run FAILED."""
    import mlflow
    import mlflow.sklearn
    from mlflow.data.pandas_dataset import from_pandas
    from mlflow.models import infer_signature

    signature = infer_signature(record.x_example, record.y_example)
    with mlflow.start_run(experiment_id=experiment_id, run_name=run_name, tags=record.tags) as run:
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
        info = mlflow.sklearn.log_model(
            model,
            name=MODEL_ARTIFACT,
            signature=signature,
            input_example=record.x_example.head(5),
            pip_requirements=pip_requirements(),
        )
    return LoggedRun(run.info.run_id, info.model_uri, experiment_id)
