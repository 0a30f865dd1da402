"""Build a ready server from settings: store, model, writer, app. Also the uvicorn factory
for multi-worker mode (each worker builds its own from the environment)."""

from __future__ import annotations

import os

from mlrig.config import Settings, load_settings
from mlrig.predictions.spool import Spool, ensure_dir, spool_file
from mlrig.predictions.store import PredictionStore
from mlrig.predictions.writer import GroupCommitWriter
from mlrig.serving.app import create_app
from mlrig.serving.fastpath import FastPath
from mlrig.serving.startup import Registry, open_follower

CONFIG_ENV = "MLRIG_CONFIG_FILE"


def build_app(settings: Settings) -> FastPath:
    """Load the served model and open the store; raises ModelNotFoundError / StoreUnavailableError."""
    from dataclasses import asdict

    from mlrig.tracking.registry import champion_history

    registry = Registry(settings)
    follower = open_follower(settings, registry)  # registry, else its local copy, else a URI
    store = PredictionStore(settings.predictions_url)
    store.create_schema()
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
