"""Monitoring's records in MLflow: the reference profile stored with each model version's run,
and one run per monitoring pass (experiment ``<model>-monitoring``), so drift over time shows
in the MLflow UI. Every call goes through the client it is given."""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlrig.errors import ModelNotFoundError, TrackingError
from mlrig.tracking.tags import EVAL_SET_RUN_ID, EVAL_SET_THIS_RUN

if TYPE_CHECKING:
    from mlflow import MlflowClient


@dataclass(frozen=True)
class VersionRecord:
    """What the registry and the version's run say about one model version."""

    name: str
    version: str
    run_id: str
    metrics: dict[str, float]
    tags: dict[str, str]
    training_source: str | None  # the dataset the run logged as its training input


def version_record(client: MlflowClient, name: str, version: str) -> VersionRecord:
    from mlflow.exceptions import MlflowException

    try:
        mv = client.get_model_version(name, version)
        run = client.get_run(str(mv.run_id))
    except MlflowException as exc:
        raise ModelNotFoundError(f"model {name!r} version {version}: not found ({exc})") from exc
    source = None
    for item in (run.inputs.dataset_inputs if run.inputs else None) or []:
        contexts = {t.value for t in item.tags if t.key == "mlflow.data.context"}
        if "training" in contexts:
            source = _source_uri(item.dataset.source)
    return VersionRecord(
        name, version, str(mv.run_id), dict(run.data.metrics), dict(run.data.tags), source
    )


def _source_uri(source: str) -> str | None:
    try:
        data = json.loads(source)
    except (TypeError, ValueError):
        return source or None
    if isinstance(data, dict):
        for key in ("uri", "url", "path"):
            if data.get(key):
                return str(data[key])
    return None


def load_run_files(
    client: MlflowClient, run_id: str, paths: tuple[str, ...]
) -> dict[str, bytes] | None:
    """The contents of artifacts ``paths`` of ``run_id``, or None if any is missing."""
    from mlflow.exceptions import MlflowException

    folder = str(Path(paths[0]).parent)
    try:
        present = {f.path for f in client.list_artifacts(run_id, folder)}
    except (MlflowException, OSError):
        return None
    if not all(p in present for p in paths):
        return None
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(client.download_artifacts(run_id, folder, tmp))
        return {p: (local.parent / p).read_bytes() for p in paths}


def log_run_files(client: MlflowClient, run_id: str, files: dict[str, bytes]) -> None:
    """Write ``files`` (artifact path → content) into the artifacts of ``run_id``."""
    from mlrig.tracking.runs import write_files

    with tempfile.TemporaryDirectory() as tmp:
        write_files(tmp, files)
        try:
            client.log_artifacts(run_id, tmp)
        except Exception as exc:  # MLflow and OS errors: the store refused the write
            raise TrackingError(f"run {run_id}: cannot store artifacts ({exc})") from exc


def eval_set_file(client: MlflowClient, record: VersionRecord, path: str) -> bytes | None:
    """The evaluation set a version was scored on (logged by the run its tag names)."""
    run_id = record.tags.get(EVAL_SET_RUN_ID, "")
    if not run_id or run_id == EVAL_SET_THIS_RUN:
        run_id = record.run_id
    files = load_run_files(client, run_id, (path,))
    return None if files is None else files[path]


def log_monitoring_run(
    client: MlflowClient,
    experiment_id: str,
    run_name: str,
    tags: dict[str, str],
    params: dict[str, Any],
    metrics: dict[str, float],
    files: dict[str, bytes],
) -> str:
    """One finished run in ``experiment_id``; returns its id."""
    import math

    from mlflow.entities import Metric, Param, RunTag

    run = client.create_run(experiment_id, run_name=run_name, tags=tags)
    run_id = str(run.info.run_id)
    try:
        now = int(time.time() * 1000)
        client.log_batch(
            run_id,
            metrics=[
                Metric(_key(k), float(v), now, 0) for k, v in metrics.items() if not math.isnan(v)
            ],
            params=[Param(_key(k), str(v)[:6000]) for k, v in params.items()],
            tags=[RunTag(k, v) for k, v in tags.items()],
        )
        log_run_files(client, run_id, files)
    except BaseException:
        client.set_terminated(run_id, "FAILED")
        raise
    client.set_terminated(run_id, "FINISHED")
    return run_id


def _key(name: str) -> str:
    """MLflow keys allow letters, digits, ``_-. /``: other characters become ``_``."""
    return "".join(c if c.isalnum() or c in "_-. /" else "_" for c in name)
