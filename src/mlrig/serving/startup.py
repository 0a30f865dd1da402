"""Where the served model comes from at start-up: the registry, the local copy of the last
served version (when the registry cannot give one), or a fixed model URI (no registry at all).

The zoomcamp's "don't depend on the registry" step: every version that starts serving is
copied to ``<home>/serving-cache/<model>/`` (model files + which version and alias it was), so a
restart during a registry outage still serves — with a warning, and /ready saying so.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from mlrig.config import Settings
from mlrig.errors import MlrigError, ModelNotFoundError, TrackingError
from mlrig.serving.follower import ModelFollower, describe
from mlrig.tracking.loading import (
    LoadedModel,
    LoadTrust,
    cache_root,
    cached_model,
    load_model,
    load_model_uri,
    mark_cached,
)
from mlrig.tracking.registry import parse_model_ref, resolve_version
from mlrig.tracking.store import open_client, redact

log = logging.getLogger(__name__)


class Registry:
    """The MLflow client, opened on first use and again after a failure: the store may be down
    when the server starts, and come back later."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._client: Any = None  # an MlflowClient (serving never imports mlflow)

    def client(self) -> Any:
        if self._client is None:
            self._client = open_client(self._settings)
        return self._client

    def resolve(self, ref: str) -> str:
        """The version ``ref`` names now. ModelNotFoundError when the registry answered that
        it has no such model/alias/version; TrackingError when it did not answer."""
        try:
            return resolve_version(self.client(), ref)[1]
        except ModelNotFoundError as exc:
            cause = exc.__cause__
            if cause is None or getattr(cause, "error_code", None) in _NOT_FOUND:
                raise  # a malformed ref, or the registry answered "no such thing"
            raise self._unreachable(exc.__cause__ or exc) from exc
        except TrackingError:
            raise
        except Exception as exc:
            raise self._unreachable(exc) from exc

    def _unreachable(self, exc: BaseException) -> TrackingError:
        return TrackingError(
            f"registry {redact(self._settings.registry_uri)}: no answer ({describe(exc)})"
        )


# MLflow's error codes for "asked and answered: no such thing" (anything else: no answer).
_NOT_FOUND = frozenset({"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"})


def uri_follower(settings: Settings, uri: str) -> ModelFollower:
    """A follower of a fixed model URI (``serving.model_uri``): no registry, nothing to follow."""
    cfg = settings.serving
    trust = LoadTrust.from_settings(cfg)
    return ModelFollower(
        uri,
        loader=lambda ref: load_model_uri(
            ref, settings.tracking_uri, settings.tracking.model_name, trust
        ),
        resolver=None,
        max_rows=cfg.max_batch_rows,
        call_timeout_s=cfg.registry_timeout,
        id_fields=cfg.id_fields,
    )


def open_follower(settings: Settings, registry: Registry | None = None) -> ModelFollower:
    """A follower already serving a model; raises TrackingError / ModelNotFoundError /
    ModelRefusedError when neither the registry, nor the cache, nor the URI gives one."""
    cfg = settings.serving
    trust = LoadTrust.from_settings(cfg)
    if cfg.model_uri:
        follower = uri_follower(settings, cfg.model_uri)
        follower.load_now()
        return follower
    registry = registry or Registry(settings)
    ref = settings.served_model
    root = cache_root(settings.home_dir, parse_model_ref(ref)[0]) if cfg.cache else None

    def on_serve(model: LoadedModel) -> None:
        if root is not None:
            now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
            mark_cached(root, model, ref, now)

    follower = ModelFollower(
        ref,
        loader=lambda r: load_model(registry.client(), r, trust, keep=root),
        resolver=registry.resolve,
        max_rows=cfg.max_batch_rows,
        on_serve=on_serve,
        call_timeout_s=cfg.registry_timeout,
        poll_max_s=cfg.poll_max_interval,
        id_fields=cfg.id_fields,
    )
    try:
        follower.load_now()
    except MlrigError as exc:
        try:
            found = cached_model(root, ref, trust) if root is not None else None
        except MlrigError as cache_exc:  # say why the copy did not help, raise the real error
            log.warning("model %s: local copy not usable: %s", ref, describe(cache_exc))
            found = None
        if found is None:
            raise
        model, saved_at = found
        why = describe(exc)
        note = (
            f"started from the local copy of version {model.version} (saved {saved_at}) "
            f"because the registry could not give {ref}: {why}"
        )
        log.warning("model %s: %s", ref, note)
        follower.adopt(model, "cache", note)
    return follower
