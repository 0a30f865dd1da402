"""Build a ready server from settings: store, model, writer, app. Also the uvicorn factory
for multi-worker mode (each worker builds its own from the environment)."""

from __future__ import annotations

import os

from mlrig.config import Settings, load_settings
from mlrig.predictions.store import PredictionStore
from mlrig.predictions.writer import GroupCommitWriter
from mlrig.serving.app import create_app
from mlrig.serving.fastpath import FastPath
from mlrig.serving.follower import ModelFollower

CONFIG_ENV = "MLRIG_CONFIG_FILE"


def build_app(settings: Settings) -> FastPath:
    """Load the served model and open the store; raises ModelNotFoundError / StoreUnavailableError."""
    from dataclasses import asdict

    from mlrig.tracking.loading import load_model
    from mlrig.tracking.registry import champion_history, resolve_version
    from mlrig.tracking.store import open_client

    client = open_client(settings)
    follower = ModelFollower(
        settings.served_model,
        loader=lambda ref: load_model(client, ref),
        resolver=lambda ref: resolve_version(client, ref)[1],
        max_rows=settings.serving.max_batch_rows,
    )
    follower.load_now()
    store = PredictionStore(settings.predictions_url)
    store.create_schema()
    cfg = settings.serving
    writer = GroupCommitWriter(
        store,
        settings.predictions.commit_interval_ms,
        max_queued_rows=cfg.log_queue_rows,
        commit_timeout_ms=cfg.commit_timeout_ms,
        retry_after_s=cfg.retry_after_s,
    )
    return create_app(
        settings,
        follower,
        store,
        writer,
        history=lambda name: [asdict(c) for c in champion_history(client, name)],
    )


def app() -> FastPath:
    """uvicorn factory (``mlrig.serving.asgi:app --factory``): settings from env + config file."""
    return build_app(load_settings(os.environ.get(CONFIG_ENV)))
