"""Clients for mlrig's tracking and registry stores (embedded SQLite by default)."""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING

from mlrig.config import Settings
from mlrig.errors import TrackingError
from mlrig.redact import redact_url

if TYPE_CHECKING:
    from mlflow import MlflowClient

log = logging.getLogger(__name__)


def open_client(settings: Settings) -> MlflowClient:
    """A client for the tracking and registry stores of ``settings``.

    Creates the home folder for the embedded SQLite store. MLflow's process-wide URIs (and
    ``MLFLOW_TRACKING_URI``/``MLFLOW_REGISTRY_URI``) are left as the user set them: every
    tracking function works through the client it is given, so clients of two homes can be
    used side by side in one process.
    """
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    from mlflow import MlflowClient

    if settings.tracking_uri.startswith("sqlite:") or settings.registry_uri.startswith("sqlite:"):
        settings.home_dir.mkdir(parents=True, exist_ok=True)
    try:
        return MlflowClient(settings.tracking_uri, settings.registry_uri)
    except Exception as exc:
        raise TrackingError(f"tracking store {redact(settings.tracking_uri)}: {exc}") from exc


def ensure_experiment(client: MlflowClient, settings: Settings, name: str | None = None) -> str:
    """Id of experiment ``name`` (default: the configured one), created with artifacts under
    the mlrig home if new."""
    name = name or settings.tracking.experiment
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return str(experiment.experiment_id)
    location = None
    if settings.tracking_uri.startswith("sqlite:"):
        location = settings.artifact_root.as_uri()
    log.info("creating MLflow experiment %s", name)
    return str(client.create_experiment(name, artifact_location=location))


def redact(uri: str) -> str:
    """A URI without its password or tokens, safe to show in messages and logs."""
    return redact_url(uri)
