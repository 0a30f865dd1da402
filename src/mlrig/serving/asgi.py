"""Build a ready server from settings: store, model, writer, app. Also the uvicorn factory
for multi-worker mode (each worker builds its own from the environment)."""

from __future__ import annotations

import os

from mlrig.config import Settings, load_settings
from mlrig.predictions.spool import Spool, ensure_dir, spool_file
from mlrig.predictions.store import PredictionStore
from mlrig.predictions.store import open_store as open_predictions
from mlrig.predictions.writer import GroupCommitWriter
from mlrig.serving.app import create_app
from mlrig.serving.fastpath import FastPath
from mlrig.serving.startup import Registry, open_follower

CONFIG_ENV = "MLRIG_CONFIG_FILE"


def open_store(settings: Settings) -> PredictionStore:
    """The prediction store, schema up to date; StoreUnavailableError (its URL without the
    password) when the database does not answer. The spool covers outages while serving, not
    at start: a server that has never reached its store may be pointed at the wrong one."""
    return open_predictions(settings.predictions_url)


def build_app(settings: Settings) -> FastPath:
    """Open the store, then load the served model; raises StoreUnavailableError /
    ModelNotFoundError."""
    from dataclasses import asdict

    from mlrig.tracking.registry import champion_history

    store = open_store(settings)  # first: it fails in a second, loading a model takes many
    registry = Registry(settings)
    follower = open_follower(settings, registry)  # registry, else its local copy, else a URI
    cfg = settings.serving
    spool = None
    if settings.predictions.spool:
        ensure_dir(settings.spool_dir)
        spool = Spool(
            spool_file(settings.spool_dir, settings.predictions_url),
            settings.predictions.spool_max_bytes,
        )
    writer = GroupCommitWriter(
        store,
        settings.predictions.commit_interval_ms,
        max_queued_rows=cfg.log_queue_rows,
        commit_timeout_ms=cfg.commit_timeout_ms,
        retry_after_s=cfg.retry_after_s,
        spool=spool,
        replay_interval_s=settings.predictions.replay_interval,
    )
    return create_app(
        settings,
        follower,
        store,
        writer,
        history=lambda name: [asdict(c) for c in champion_history(registry.client(), name)],
    )


def app() -> FastPath:
    """uvicorn factory (``mlrig.serving.asgi:app --factory``): settings from env + config file."""
    return build_app(load_settings(os.environ.get(CONFIG_ENV)))
