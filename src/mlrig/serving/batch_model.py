"""The model batch scoring uses: loaded as ``mlrig serve`` loads it (the registry, the
serving trust rules, the served-version self-check), without the server's follower threads,
and without touching the serving cache (a batch job must not change what a restarted server
falls back to)."""

from __future__ import annotations

from mlrig.config import Settings
from mlrig.serving.follower import ModelFollower
from mlrig.serving.predictor import Predictor
from mlrig.serving.startup import Registry, uri_follower
from mlrig.tracking.loading import LoadTrust, load_model


def load_predictor(settings: Settings, ref: str | None = None) -> Predictor:
    """The Predictor of ``ref`` (NAME@ALIAS or NAME/VERSION; default: the served model, or
    ``serving.model_uri`` when set). Raises TrackingError / ModelNotFoundError /
    ModelRefusedError, as ``mlrig serve`` does at start-up."""
    cfg = settings.serving
    trust = LoadTrust.from_settings(cfg)
    if ref is None and cfg.model_uri:
        return uri_follower(settings, cfg.model_uri).load_now()
    registry = Registry(settings)
    follower = ModelFollower(
        ref or settings.served_model,
        loader=lambda r: load_model(registry.client(), r, trust),
        resolver=registry.resolve,
        max_rows=cfg.max_batch_rows,
        call_timeout_s=cfg.registry_timeout,
    )
    return follower.load_now()
