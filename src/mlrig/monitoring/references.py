"""Find a model version's reference profile in MLflow, building it once for versions that were
registered before mlrig logged profiles (from the run's logged training dataset and its frozen
evaluation set), and storing it with the version so this happens only once."""

from __future__ import annotations

import io
import logging
from typing import TYPE_CHECKING

from mlrig.errors import MlrigError, MonitoringError
from mlrig.monitoring.profile import FILES, ReferenceProfile, build_profile

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from mlrig.tracking.monitoring import VersionRecord

log = logging.getLogger(__name__)


def load_reference(
    client: MlflowClient, record: VersionRecord, max_rows: int = 5000
) -> ReferenceProfile:
    """The profile stored with ``record``'s run; built and stored there first if missing."""
    from mlrig.tracking.monitoring import load_run_files, log_run_files

    files = load_run_files(client, record.run_id, FILES)
    if files is not None:
        return ReferenceProfile.from_files(files)
    profile = _backfill(client, record, max_rows)
    log_run_files(client, record.run_id, profile.to_files())
    log.info("model %s version %s: reference profile built and stored", record.name, record.version)
    return profile


def _backfill(client: MlflowClient, record: VersionRecord, max_rows: int) -> ReferenceProfile:
    import pandas as pd

    from mlrig.data.ingest import load_table
    from mlrig.tracking.evalset import EVAL_SET_ARTIFACT
    from mlrig.tracking.loading import load_model
    from mlrig.tracking.monitoring import eval_set_file

    name, version = record.name, record.version
    where = f"model {name!r} version {version}"
    if record.training_source is None:
        raise MonitoringError(
            f"{where}: no reference profile, and its run logged no training dataset to build one"
        )
    raw = eval_set_file(client, record, EVAL_SET_ARTIFACT)
    if raw is None:
        raise MonitoringError(f"{where}: its run has no {EVAL_SET_ARTIFACT}")
    model = load_model(client, f"{name}/{version}")
    features = list(model.features)
    evaluation = pd.read_parquet(io.BytesIO(raw))
    source = record.training_source.removeprefix("file://")
    try:
        frame = load_table(source, None).frame
    except MlrigError as exc:
        raise MonitoringError(
            f"{where}: no reference profile, and its training data {source} cannot be read "
            f"to build one ({exc})"
        ) from exc
    missing = [f for f in features if f not in frame.columns]
    if missing:
        raise MonitoringError(f"{where}: training data {source} lacks {missing}")
    held_out = set(pd.util.hash_pandas_object(evaluation[features], index=False))
    keep = ~pd.util.hash_pandas_object(frame[features], index=False).isin(held_out)
    preds = model.estimator.predict(evaluation[features])
    return build_profile(frame.loc[keep, features], preds, model.task, model.categorical, max_rows)
