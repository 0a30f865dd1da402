"""Load a registered scikit-learn model together with its feature contract, and make a loaded
estimator take plain NumPy rows (what serving passes).

Who must be trusted: loading a model runs code chosen by whoever could write its files — the
registry entry says where they are, the artifact store holds them. A pickle/cloudpickle file
can run anything; a skops file can only build the types its loader is told to trust, but
MLflow reads that list from the model's own MLmodel file, so a crafted model can trust
anything. Serving therefore loads with a ``LoadTrust`` from its settings: skops only unless
``serving.allow_pickle``, and the trusted types from ``serving.trusted_types`` — never from the
model. MLflow's own ``MLFLOW_ALLOW_PICKLE_DESERIALIZATION=false`` still refuses everything.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlrig.errors import ModelNotFoundError, ModelRefusedError
from mlrig.tracking.registry import model_version

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from mlrig.config import ServingSettings

log = logging.getLogger(__name__)

CACHE_POINTER = "last.json"  # in <home>/serving-cache/<model>/: the version served last


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
    example: Any = None  # the input example logged with the model (a DataFrame), if any


@dataclass(frozen=True)
class LoadTrust:
    """What serving lets a model file run: skops only (plus ``trusted_types``) or also pickle."""

    allow_pickle: bool = False
    trusted_types: tuple[str, ...] = ()

    @classmethod
    def from_settings(cls, serving: ServingSettings) -> LoadTrust:
        return cls(serving.allow_pickle, tuple(serving.trusted_types))


def load_model(
    client: MlflowClient, ref: str, trust: LoadTrust | None = None, keep: Path | None = None
) -> LoadedModel:
    """Load ``NAME@ALIAS`` / ``NAME/VERSION``, pinned to the version the alias names now.

    The version's files are fetched from where the registry (through ``client``) says they are,
    into a temporary folder, and loaded from there; ModelNotFoundError if that fails,
    ModelRefusedError if ``trust`` (None = MLflow's own rules) does not allow the file. With
    ``keep`` (a serving cache folder), the loaded files are also copied to ``keep/<version>``.
    """
    import tempfile

    import mlflow.artifacts

    mv = model_version(client, ref)
    name, version = str(mv.name), str(mv.version)
    try:
        location = client.get_model_version_download_uri(name, version)
        with tempfile.TemporaryDirectory() as tmp:
            local = mlflow.artifacts.download_artifacts(
                artifact_uri=location, dst_path=tmp, tracking_uri=client.tracking_uri
            )
            model = load_model_dir(Path(local), name, version, mv.run_id, trust)
            if keep is not None:
                try:
                    _copy_to_cache(Path(local), keep, version)
                except OSError as exc:  # a full or read-only disk must not stop serving
                    log.warning("model %r version %s: no local copy kept (%s)", name, version, exc)
    except ModelNotFoundError:
        raise
    except Exception as exc:  # MLflow, skops and OS errors all mean the same here
        raise ModelNotFoundError(
            f"model {name!r} version {version}: cannot be loaded ({exc})"
        ) from exc
    return model


def load_model_uri(uri: str, tracking_uri: str, name: str, trust: LoadTrust) -> LoadedModel:
    """Load the model at an MLflow URI (``runs:/…``) or a local directory, without the
    registry. A serving-cache copy keeps its registered name and version; anything else is
    named ``name`` with the URI as its version."""
    import tempfile

    import mlflow.artifacts

    path = Path(uri).expanduser()
    try:
        if path.is_dir():
            return load_model_dir(path, *_cached_identity(path, name, uri), trust)
        with tempfile.TemporaryDirectory() as tmp:
            local = mlflow.artifacts.download_artifacts(
                artifact_uri=uri, dst_path=tmp, tracking_uri=tracking_uri
            )
            return load_model_dir(Path(local), name, uri, None, trust)
    except ModelNotFoundError:
        raise
    except Exception as exc:
        raise ModelNotFoundError(f"model {uri}: cannot be loaded ({exc})") from exc


def load_model_dir(
    local: Path, name: str, version: str, run_id: str | None, trust: LoadTrust | None
) -> LoadedModel:
    """Load an MLflow sklearn model directory (MLmodel + model file) and its signature."""
    import mlflow.sklearn
    from mlflow.models import Model
    from sklearn.base import is_classifier

    meta = Model.load(str(local))
    if trust is None:
        estimator = mlflow.sklearn.load_model(str(local))
    else:
        estimator = _load_trusted(local, meta.flavors.get("sklearn"), name, version, trust)
    signature = meta.signature
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
    try:
        example = meta.load_input_example(str(local))
    except Exception:  # an example is a check, not a requirement
        example = None
    return LoadedModel(estimator, name, version, run_id, features, categorical, task, example)


def _load_trusted(
    local: Path, flavor: dict[str, Any] | None, name: str, version: str, trust: LoadTrust
) -> Any:
    """The estimator, if its file is one ``trust`` allows; ModelRefusedError naming the
    setting otherwise. The model's own ``skops_trusted_types`` are ignored on purpose."""
    import mlflow.sklearn
    from mlflow.environment_variables import MLFLOW_ALLOW_PICKLE_DESERIALIZATION

    what = f"model {name!r} version {version}"
    if not MLFLOW_ALLOW_PICKLE_DESERIALIZATION.get():
        raise ModelRefusedError(
            f"{what}: not loaded because MLFLOW_ALLOW_PICKLE_DESERIALIZATION is false"
        )
    if flavor is None:
        raise ModelRefusedError(f"{what}: not a scikit-learn model (no sklearn flavor in MLmodel)")
    fmt = str(flavor.get("serialization_format", "pickle"))
    if fmt != "skops":
        if not trust.allow_pickle:
            raise ModelRefusedError(
                f"{what}: saved as {fmt}, which runs arbitrary code when loaded; refused "
                "because serving.allow_pickle is false (set it only if you trust everyone who "
                "can write the registry and the artifact store, or re-log the model with skops)"
            )
        return mlflow.sklearn.load_model(str(local))
    import skops.io

    path = local / str(flavor["pickled_model"])
    untrusted = [
        t for t in skops.io.get_untrusted_types(file=str(path)) if t not in trust.trusted_types
    ]
    if untrusted:
        raise ModelRefusedError(
            f"{what}: its skops file holds types serving does not trust: {untrusted}; add them "
            "to serving.trusted_types if you trust who wrote the model"
        )
    return skops.io.load(str(path), trusted=list(trust.trusted_types) or None)


# --- serving cache: the last served version, for starting while the registry is down ---------


def cache_root(home: Path, name: str) -> Path:
    """``<home>/serving-cache/<model>`` (the name quoted: registered names may hold '/')."""
    from urllib.parse import quote

    return home / "serving-cache" / quote(name, safe="")


def _copy_to_cache(local: Path, root: Path, version: str) -> None:
    """Copy a downloaded model to ``root/<version>`` (atomically: a crash leaves no half copy)."""
    dest = root / version
    if dest.is_dir():
        return
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".tmp-{version}-{uuid.uuid4().hex[:8]}"
    shutil.copytree(local, tmp)
    try:
        os.rename(tmp, dest)
    except OSError:  # another worker copied the same version first
        shutil.rmtree(tmp, ignore_errors=True)


def mark_cached(root: Path, model: LoadedModel, ref: str, at: str) -> None:
    """Record ``model`` (already copied by ``load_model(keep=root)``) as the version to start
    from for ``ref``, and drop older copies (the previous one is kept)."""
    if not (root / model.version).is_dir():
        return
    pointer = root / CACHE_POINTER
    previous = _read_pointer(root)
    record = {
        "name": model.name,
        "version": model.version,
        "run_id": model.run_id,
        "ref": ref,
        "saved_at": at,
    }
    tmp = root / f".{CACHE_POINTER}.{uuid.uuid4().hex[:8]}"
    tmp.write_text(json.dumps(record))
    os.replace(tmp, pointer)
    keep = {model.version, str(previous.get("version")) if previous else ""}
    for child in root.iterdir():
        if child.is_dir() and not child.name.startswith(".") and child.name not in keep:
            shutil.rmtree(child, ignore_errors=True)


def cached_model(root: Path, ref: str, trust: LoadTrust) -> tuple[LoadedModel, str] | None:
    """The version last served for ``ref`` and when it was saved, or None when there is no
    usable copy. Loaded with the same trust as the registry's versions."""
    record = _read_pointer(root)
    if record is None or record.get("ref") != ref:
        return None
    local = root / str(record["version"])
    if not local.is_dir():
        return None
    try:
        model = load_model_dir(
            local, str(record["name"]), str(record["version"]), record.get("run_id"), trust
        )
    except ModelNotFoundError:
        raise
    except Exception as exc:  # a damaged copy: say so, never serve half a model
        raise ModelNotFoundError(f"local copy {local}: cannot be loaded ({exc})") from exc
    return model, str(record.get("saved_at", ""))


def _read_pointer(root: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((root / CACHE_POINTER).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and "version" in data else None


def _cached_identity(path: Path, name: str, uri: str) -> tuple[str, str, str | None]:
    """(name, version, run_id) of a model directory: a serving-cache copy knows its own."""
    record = _read_pointer(path.parent)
    if record is not None and str(record.get("version")) == path.name:
        return str(record["name"]), path.name, record.get("run_id")
    return name, uri, None


def accept_arrays(model: Any) -> None:
    """Drop ``feature_names_in_`` from a fitted estimator and every fitted part of it, so a
    Pipeline fitted on a DataFrame takes NumPy rows (serving) without a warning per call."""
    model.__dict__.pop("feature_names_in_", None)
    for _, part in getattr(model, "steps", []):
        accept_arrays(part)
    for _, part, _cols in getattr(model, "transformers_", []):
        if hasattr(part, "__dict__"):
            accept_arrays(part)
