"""The FastAPI app factory — the only FastAPI importer. Routes are thin: they read the body,
call the framework-free Predictor, await the group commit and answer with orjson.

Hot routes take the raw body rather than a pydantic model: validation against the model's
own signature happens once, in the Predictor, without building pandas frames or pydantic
objects per row. The OpenAPI schema still documents the served model's real features.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import gc
import hmac
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
from fastapi import FastAPI, Request
from fastapi.responses import Response
from pydantic import SecretStr

from mlrig._version import __version__
from mlrig.config import Settings
from mlrig.errors import MlrigError, StoreUnavailableError
from mlrig.predictions.records import PredictionBatch
from mlrig.predictions.store import PredictionStore
from mlrig.predictions.writer import GroupCommitWriter
from mlrig.serving.follower import ModelFollower
from mlrig.serving.metrics import ServingMetrics
from mlrig.serving.predictor import Batch, Predictor, RequestError
from mlrig.serving.schemas import feedback_schema, predict_schema

log = logging.getLogger(__name__)


def _json(obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        orjson.dumps(obj, option=orjson.OPT_SERIALIZE_NUMPY),
        status,
        headers,
        media_type="application/json",
    )


def _token_error(request: Request, expected: SecretStr | None, what: str) -> Response | None:
    """None when authorised; else 401 (no/malformed token) or 403 (wrong token, or disabled)."""
    if expected is None:
        return (
            None
            if what == "predictions"
            else _json(
                {"error": f"{what} endpoints are disabled: set MLRIG_ADMIN_TOKEN to enable them"},
                403,
            )
        )
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        return _json(
            {"error": f"{what} require 'Authorization: Bearer <token>'"},
            401,
            {"WWW-Authenticate": "Bearer"},
        )
    if not hmac.compare_digest(token.encode(), expected.get_secret_value().encode()):
        return _json({"error": "invalid token"}, 403)
    return None


def create_app(
    settings: Settings,
    follower: ModelFollower,
    store: PredictionStore,
    writer: GroupCommitWriter,
    metrics: ServingMetrics | None = None,
) -> FastAPI:
    """An app serving ``follower``'s model; the caller has loaded it (no I/O at import)."""
    cfg = settings.serving
    metrics = metrics or ServingMetrics()
    features = follower.current.features if follower.current else ()

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # MLflow, sklearn and pandas leave ~10^6 long-lived objects; moving them out of the
        # collector's reach keeps full collections (and p99 latency spikes) short.
        gc.collect()
        gc.freeze()
        writer.start()
        poller = None
        if cfg.poll_interval > 0 and "@" in follower.ref:
            poller = asyncio.create_task(follower.poll(cfg.poll_interval))
        try:
            yield
        finally:
            if poller:
                poller.cancel()
            await asyncio.to_thread(writer.stop)
            store.close()

    app = FastAPI(
        title="mlrig model server",
        version=__version__,
        lifespan=lifespan,
        description=f"Serves `models:/{follower.ref}`; every answered prediction is logged.",
    )

    async def _read(request: Request) -> bytes:
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > cfg.max_body_bytes:
            raise RequestError(413, f"request body over the limit of {cfg.max_body_bytes} bytes")
        body = await request.body()
        if len(body) > cfg.max_body_bytes:
            raise RequestError(413, f"request body over the limit of {cfg.max_body_bytes} bytes")
        return body

    async def _serve(request: Request, endpoint: str, protocol: _Protocol) -> Response:
        t0 = time.perf_counter()
        status = 200
        try:
            denied = _token_error(request, cfg.predict_token, "predictions")
            if denied is not None:
                status = denied.status_code
                return denied
            predictor = follower.current
            if predictor is None:
                status = 503
                return _json({"error": "no model loaded yet"}, 503)
            body = await _read(request)
            batch = protocol.parse(predictor, body, request.headers.get("content-type", ""))
            preds = predictor.predict(batch.x)
            latency_ms = (time.perf_counter() - t0) * 1000
            await writer.write([_record(predictor, batch, preds, endpoint, latency_ms)])
            metrics.logged.inc(len(batch.ids))
            return protocol.answer(predictor, batch, preds)
        except RequestError as err:
            status = err.status
            return _json(protocol.error(err), err.status)
        except StoreUnavailableError as err:
            status = 503
            return _json({"error": str(err)}, 503)
        finally:
            metrics.requests.labels(endpoint, str(status)).inc()
            metrics.latency.labels(endpoint).observe(time.perf_counter() - t0)

    @app.post(
        "/predict",
        summary="Predict one record or a list; each may carry an id",
        openapi_extra=predict_schema(features),
    )
    async def predict(request: Request) -> Response:
        return await _serve(request, "predict", _PREDICT)

    @app.post(
        "/invocations",
        summary="MLflow scoring protocol (JSON formats and text/csv)",
        openapi_extra=predict_schema(features, invocations=True),
    )
    async def invocations(request: Request) -> Response:
        return await _serve(request, "invocations", _INVOCATIONS)

    @app.post(
        "/feedback",
        summary="Ground truth for earlier predictions: {id, actual} or a list",
        openapi_extra=feedback_schema(),
    )
    async def feedback(request: Request) -> Response:
        denied = _token_error(request, cfg.predict_token, "predictions")
        if denied is not None:
            return denied
        try:
            pairs = _parse_feedback(await _read(request))
            missing = await asyncio.to_thread(store.missing_ids, [p[0] for p in pairs])
            if missing:
                return _json(
                    {"error": f"unknown prediction id {missing[0]!r}", "ids": missing}, 404
                )
            await asyncio.to_thread(store.add_feedback, pairs)
        except RequestError as err:
            return _json(err.as_dict(), err.status)
        except Exception as exc:  # the DB is down: say so, store nothing half-way
            log.error("feedback write failed: %s", exc)
            return _json({"error": "prediction store unavailable"}, 503)
        metrics.requests.labels("feedback", "200").inc()
        return _json({"stored": len(pairs)})

    @app.get("/health", summary="Liveness, with the loaded model version")
    async def health() -> Response:
        p = follower.current
        return _json(
            {"status": "ok", "model": p.name if p else None, "version": p.version if p else None}
        )

    @app.get("/ready", summary="200 once a model is loaded")
    async def ready() -> Response:
        p = follower.current
        if p is None:
            return _json({"ready": False}, 503)
        return _json({"ready": True, "model": p.name, "version": p.version})

    @app.get("/metrics", summary="Prometheus metrics")
    async def prometheus() -> Response:
        p = follower.current
        if p is not None:
            metrics.set_model(p.name, p.version)
        return Response(metrics.render(), media_type="text/plain; version=0.0.4")

    @app.post(
        "/admin/reload", summary="Re-resolve the alias now and swap if it moved (bearer token)"
    )
    async def reload(request: Request) -> Response:
        denied = _token_error(request, cfg.admin_token, "admin")
        if denied is not None:
            return denied
        try:
            changed = await follower.refresh()
        except MlrigError as exc:
            return _json({"error": str(exc)}, 409)
        p = follower.current
        return _json(
            {
                "changed": changed,
                "model": p.name if p else None,
                "version": p.version if p else None,
            }
        )

    return app


@dataclass(frozen=True)
class _Protocol:
    """How one prediction route reads a body, answers, and words its errors."""

    parse: Callable[[Predictor, bytes, str], Batch]
    answer: Callable[[Predictor, Batch, np.ndarray], Response]
    error: Callable[[RequestError], dict[str, Any]]


def _answer_predict(p: Predictor, batch: Batch, preds: np.ndarray) -> Response:
    return _json(
        {
            "model": p.name,
            "version": p.version,
            "predictions": [
                {"id": i, "prediction": y, "model": p.name, "version": p.version}
                for i, y in zip(batch.ids, preds.tolist(), strict=True)
            ],
        }
    )


def _answer_invocations(p: Predictor, _batch: Batch, preds: np.ndarray) -> Response:
    return _json({"predictions": preds}, headers={"X-Model-Version": p.version})


def _mlflow_error(err: RequestError) -> dict[str, Any]:
    return {"error_code": "BAD_REQUEST", "message": err.message, **err.as_dict()}


_PREDICT = _Protocol(
    lambda p, body, _ctype: p.parse_predict(body), _answer_predict, RequestError.as_dict
)
_INVOCATIONS = _Protocol(
    lambda p, body, ctype: p.parse_invocation(body, ctype), _answer_invocations, _mlflow_error
)


def _record(
    p: Predictor, batch: Batch, preds: np.ndarray, endpoint: str, latency_ms: float
) -> PredictionBatch:
    return PredictionBatch(
        batch.batch_id,
        batch.ids,
        batch.client_ids,
        dt.datetime.now(dt.UTC),
        p.name,
        p.version,
        endpoint,
        p.features,
        batch.x,
        preds,
        latency_ms,
    )


def _parse_feedback(body: bytes) -> list[tuple[str, float]]:
    if not body.strip():
        raise RequestError(400, "empty request body: expected {id, actual} or a list of them")
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise RequestError(400, f"body is not valid JSON ({exc})") from exc
    items = data if isinstance(data, list) else [data]
    if not items:
        raise RequestError(400, "no feedback records in the request body")
    pairs = []
    for i, item in enumerate(items):
        if not isinstance(item, dict) or "id" not in item:
            raise RequestError(
                422, f"record {i}: expected an object with 'id' and 'actual'", i, "id"
            )
        actual: Any = item.get("actual")
        if type(actual) not in (int, float):
            raise RequestError(422, f"record {i}: 'actual' must be a number", i, "actual")
        pairs.append((str(item["id"]), float(actual)))
    return pairs
