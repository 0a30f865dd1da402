"""Load a registered scikit-learn model together with its feature contract, and make a loaded
estimator take plain NumPy rows (what serving passes)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mlrig.errors import ModelNotFoundError
from mlrig.tracking.registry import model_version

if TYPE_CHECKING:
    from mlflow import MlflowClient


@dataclass(frozen=True)
class LoadedModel:
    """A fitted estimator plus the registry coordinates and input columns it was logged with."""

    estimator: Any
    name: str
    version: str
    run_id: str | None
    features: tuple[str, ...]
    categorical: tuple[str, ...] = ()  # features the signature types as strings
    task: str = "regression"


def load_model(client: MlflowClient, ref: str) -> LoadedModel:
    """Load ``NAME@ALIAS`` / ``NAME/VERSION``, pinned to the version the alias names now.

    The version's files are fetched from where the registry (through ``client``) says they are,
    into a temporary folder, and loaded from there; ModelNotFoundError if that fails.
    """
    import tempfile

    import mlflow.artifacts
    import mlflow.sklearn
    from mlflow.models import Model

    mv = model_version(client, ref)
    name, version = str(mv.name), str(mv.version)
    try:
        location = client.get_model_version_download_uri(name, version)
        with tempfile.TemporaryDirectory() as tmp:
            local = mlflow.artifacts.download_artifacts(
                artifact_uri=location, dst_path=tmp, tracking_uri=client.tracking_uri
            )
            signature = Model.load(local).signature
            estimator = mlflow.sklearn.load_model(local)
    except Exception as exc:  # MLflow, skops and OS errors all mean the same here
        raise ModelNotFoundError(
            f"model {name!r} version {version}: cannot be loaded ({exc})"
        ) from exc
    from sklearn.base import is_classifier

    features: tuple[str, ...] = ()
    categorical: tuple[str, ...] = ()
    if signature is not None and signature.inputs is not None:
        inputs = signature.inputs
        features = tuple(inputs.input_names())
        categorical = tuple(
            str(spec.name)
            for spec in inputs.inputs
            if getattr(getattr(spec, "type", None), "name", "") == "string"
        )
    task = "classification" if is_classifier(estimator) else "regression"
    return LoadedModel(estimator, name, version, mv.run_id, features, categorical, task)


def accept_arrays(model: Any) -> None:
    """Drop ``feature_names_in_`` from a fitted estimator and every fitted part of it, so a
    Pipeline fitted on a DataFrame takes NumPy rows (serving) without a warning per call."""
    model.__dict__.pop("feature_names_in_", None)
    for _, part in getattr(model, "steps", []):
        accept_arrays(part)
    for _, part, _cols in getattr(model, "transformers_", []):
        if hasattr(part, "__dict__"):
            accept_arrays(part)
