"""The FastAPI app factory — the only FastAPI importer.

The two hot routes (/predict, /invocations) are served by the raw-ASGI front in fastpath.py;
their FastAPI twins here run the same handler and exist so /docs shows the served model's real
features. Everything else (feedback, health, readiness, metrics, admin) is ordinary FastAPI.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator, Awaitable
from typing import Any, TypeVar

from fastapi import FastAPI, Request
from fastapi.responses import Response

from mlrig._version import __version__
from mlrig.config import Settings
from mlrig.errors import MlrigError, StoreUnavailableError
from mlrig.predictions.store import PredictionStore
from mlrig.predictions.writer import GroupCommitWriter
from mlrig.serving import v2
from mlrig.serving.batcher import PredictBatcher
from mlrig.serving.fastpath import FastPath
from mlrig.serving.feedback import FeedbackHandler
from mlrig.serving.follower import ModelFollower
from mlrig.serving.handlers import (
    INVOCATIONS,
    PREDICT,
    PredictionHandler,
    Protocol,
    Reply,
    json_reply,
    token_error,
    v2_infer,
)
from mlrig.serving.metrics import ServingMetrics
from mlrig.serving.overview import STATIC_FILES, History, Overview, static_file
from mlrig.serving.predictor import Predictor, RequestError
from mlrig.serving.schemas import feedback_schema, predict_schema, v2_infer_schema

log = logging.getLogger(__name__)
T = TypeVar("T")


def _response(reply: Reply) -> Response:
    return Response(reply.body, reply.status, reply.headers, media_type="application/json")


def create_app(
    settings: Settings,
    follower: ModelFollower,
    store: PredictionStore,
    writer: GroupCommitWriter,
    metrics: ServingMetrics | None = None,
    history: History | None = None,
) -> FastPath:
    """The ASGI app serving ``follower``'s model (already loaded by the caller: no I/O here).
    ``history`` returns a model's champion history (the overview page shows it).

    Returns the fast-path front; its ``.app`` is the FastAPI application behind it.
    """
    cfg = settings.serving
    metrics = metrics or ServingMetrics()
    metrics.follow(follower.stats)
    handler = PredictionHandler(
        follower, PredictBatcher(writer), metrics, cfg.predict_token, cfg.max_body_bytes
    )
    feedback_handler = FeedbackHandler(
        follower, store, metrics, cfg.predict_token, cfg.max_body_bytes
    )

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
    metrics.watch_writer(writer.health)
    metrics.watch_stages(writer.stages)

    # The store's own error is a 503 the client may retry; anything else is a bug: a 500 with
    # a JSON body (no stack trace) and the traceback in the log — never a 503.
    @app.exception_handler(StoreUnavailableError)
    async def store_unavailable(request: Request, exc: Exception) -> Response:
        log.error("%s %s: %s", request.method, request.url.path, exc)
        headers = {"Retry-After": str(getattr(exc, "retry_after_s", cfg.retry_after_s))}
        return _response(json_reply({"error": str(exc)}, 503, headers))

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> Response:
        # Starlette re-raises after this answer: the server logs the traceback once.
        body = {"error": f"internal error ({type(exc).__name__}) on {request.url.path}"}
        return _response(json_reply(body, 500))

    async def _store_read(read: Awaitable[T]) -> T:
        """``read``'s result, or StoreUnavailableError (503) once the commit deadline passes: a
        stalled store never holds a page request open (the blocked thread ends with the
        store's own timeout)."""
        try:
            return await asyncio.wait_for(read, cfg.commit_timeout_ms / 1000)
        except TimeoutError as exc:
            raise StoreUnavailableError(
                f"prediction store: no answer within {cfg.commit_timeout_ms:g} ms"
            ) from exc

    async def _read(request: Request) -> bytes | RequestError:
        length = request.headers.get("content-length", "")
        if length.isdigit() and int(length) > cfg.max_body_bytes:
            return handler.too_large()
        body = await request.body()
        return handler.too_large() if len(body) > cfg.max_body_bytes else body

    async def _predict_route(request: Request, protocol: Protocol) -> Response:
        return _response(await handler.handle(protocol, request.headers, await _read(request)))

    @app.post(
        "/predict",
        summary="Predict one record or a list; each may carry an id",
        openapi_extra=predict_schema(follower.current, cfg.max_batch_rows),
    )
    async def predict(request: Request) -> Response:
        return await _predict_route(request, PREDICT)

    @app.post(
        "/invocations",
        summary="MLflow scoring protocol (JSON formats and text/csv)",
        openapi_extra=predict_schema(follower.current, cfg.max_batch_rows, invocations=True),
    )
    async def invocations(request: Request) -> Response:
        return await _predict_route(request, INVOCATIONS)

    @app.post(
        "/feedback",
        summary="Ground truth for earlier predictions: {id, actual} or a list",
        openapi_extra=feedback_schema(),
    )
    async def feedback(request: Request) -> Response:
        return _response(await feedback_handler.handle(request.headers, request.stream()))

    @app.get(
        "/health",
        summary="Liveness, with the loaded model version; 503 once the prediction log writer "
        "has died (only a restart brings it back)",
    )
    async def health() -> Response:
        p = follower.current
        body = {"status": "ok", "model": p.name if p else None, "version": p.version if p else None}
        if writer.crashed:  # a stalled store is /ready's business: restarting would not help
            failing = {**body, "status": "failing", "problem": writer.crashed}
            return _response(json_reply(failing, 503))
        return _response(json_reply(body))

    def checks() -> dict[str, dict[str, Any]]:
        """Named readiness checks, each with ``ok``; any not ok makes /ready answer 503."""
        parts = follower.health()  # model and registry, each with a status and why
        parts["model"]["ok"] = follower.current is not None
        if follower.current is None:
            parts["model"]["problem"] = "no model loaded yet"
        parts["registry"]["ok"] = True  # degraded, not unready: the loaded model still answers
        health = writer.health()
        parts["writer"] = health.as_check()
        if health.spool is not None:  # spooling keeps the server ready; a refused spool not
            parts["spool"] = health.spool.as_check()
        return parts

    @app.get(
        "/ready",
        summary="200 when a model is loaded and the prediction log keeps up (in the store, or "
        "in the local spool while the store is down); else 503 naming the failing check",
    )
    async def ready() -> Response:
        p = follower.current
        parts = checks()
        failing = [name for name, check in parts.items() if not check["ok"]]
        body = {
            "ready": not failing,
            "model": p.name if p else None,
            "version": p.version if p else None,
            "failing": failing,
            "checks": parts,
        }
        headers = {"Retry-After": str(cfg.retry_after_s)} if failing else None
        return _response(json_reply(body, 503 if failing else 200, headers))

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
        denied = token_error(request.headers, cfg.admin_token, "admin")
        if denied is not None:
            return _response(denied)
        try:
            changed = await follower.refresh()
        except MlrigError as exc:
            return _response(json_reply({"error": str(exc)}, 409))
        p = follower.current
        body: dict[str, Any] = {
            "changed": changed,
            "model": p.name if p else None,
            "version": p.version if p else None,
        }
        return _response(json_reply(body))

    # --- Open Inference Protocol (KServe V2); the infer POSTs are answered by the fast path ---

    async def _v2_infer_route(request: Request, name: str, version: str | None) -> Response:
        protocol = v2_infer(name, version, request.headers, cfg.id_fields)
        return _response(await handler.handle(protocol, request.headers, await _read(request)))

    v2_infer_doc = v2_infer_schema(follower.current)

    @app.post(
        "/v2/models/{name}/infer",
        summary="Open Inference Protocol (V2) infer: one tensor per feature, or one 2-D tensor",
        openapi_extra=v2_infer_doc,
        tags=["v2"],
    )
    async def v2_infer_latest(request: Request, name: str) -> Response:
        return await _v2_infer_route(request, name, None)

    @app.post(
        "/v2/models/{name}/versions/{version}/infer",
        summary="V2 infer on a version: 404 unless that version is the one served",
        openapi_extra=v2_infer_doc,
        tags=["v2"],
    )
    async def v2_infer_version(request: Request, name: str, version: str) -> Response:
        return await _v2_infer_route(request, name, version)

    @app.get("/v2/health/live", summary="V2 liveness (as /health)", tags=["v2"])
    async def v2_live() -> Response:
        if writer.crashed:
            return _response(json_reply({"live": False, "error": writer.crashed}, 503))
        return _response(json_reply({"live": True}))

    @app.get("/v2/health/ready", summary="V2 readiness (as /ready)", tags=["v2"])
    async def v2_ready() -> Response:
        failing = [name for name, check in checks().items() if not check["ok"]]
        if failing:
            body = {"ready": False, "failing": failing}
            return _response(json_reply(body, 503, {"Retry-After": str(cfg.retry_after_s)}))
        return _response(json_reply({"ready": True}))

    @app.get("/v2", summary="V2 server metadata", tags=["v2"])
    async def v2_server() -> Response:
        body = {"name": "mlrig", "version": __version__, "extensions": list(v2.EXTENSIONS)}
        return _response(json_reply(body))

    def _v2_model(name: str, version: str | None) -> Reply | Predictor:
        p = follower.current
        if p is None:
            return json_reply({"error": "no model loaded yet"}, 503)
        wrong = v2.not_served(p, name, version)
        return p if wrong is None else json_reply(v2.error(wrong), wrong.status)

    async def _v2_metadata(name: str, version: str | None) -> Response:
        found = _v2_model(name, version)
        if isinstance(found, Reply):
            return _response(found)
        return _response(json_reply(v2.model_metadata(found)))

    async def _v2_model_ready(name: str, version: str | None) -> Response:
        found = _v2_model(name, version)
        if isinstance(found, Reply):
            return _response(found)
        failing = [n for n, check in checks().items() if not check["ok"]]
        body = {"name": found.name, "version": found.version, "ready": not failing}
        return _response(json_reply(body, 503 if failing else 200))

    @app.get("/v2/models/{name}", summary="V2 model metadata: inputs, outputs", tags=["v2"])
    async def v2_metadata(name: str) -> Response:
        return await _v2_metadata(name, None)

    @app.get("/v2/models/{name}/versions/{version}", summary="V2 model metadata", tags=["v2"])
    async def v2_metadata_version(name: str, version: str) -> Response:
        return await _v2_metadata(name, version)

    @app.get("/v2/models/{name}/ready", summary="V2 model readiness", tags=["v2"])
    async def v2_model_ready(name: str) -> Response:
        return await _v2_model_ready(name, None)

    @app.get(
        "/v2/models/{name}/versions/{version}/ready", summary="V2 model readiness", tags=["v2"]
    )
    async def v2_model_ready_version(name: str, version: str) -> Response:
        return await _v2_model_ready(name, version)

    overview = Overview(follower, store, metrics, history)

    @app.get("/", summary="Overview page for a person", include_in_schema=False)
    async def index() -> Response:
        return Response(static_file("index.html"), media_type="text/html; charset=utf-8")

    @app.get("/static/{name}", include_in_schema=False)
    async def static(name: str) -> Response:
        if name not in STATIC_FILES:
            return _response(json_reply({"error": f"no static file {name!r}"}, 404))
        return Response(static_file(name), media_type=STATIC_FILES[name])

    @app.get("/overview.json", summary="What the overview page shows: model, traffic, log, monitoring")
    async def overview_json() -> Response:
        return _response(json_reply(await _store_read(overview.overview())))

    @app.get("/monitoring", summary="The latest drift and live-quality verdict (from `mlrig monitor`)")
    async def monitoring() -> Response:
        return _response(json_reply(await _store_read(overview.monitoring())))

    @app.get("/monitoring/report/{result_id}", summary="The HTML report of a monitoring result")
    async def monitoring_report(result_id: int) -> Response:
        html = await _store_read(asyncio.to_thread(store.monitoring_report, result_id))
        if html is None:
            return _response(json_reply({"error": f"no monitoring report {result_id}"}, 404))
        return Response(html, media_type="text/html; charset=utf-8")

    return FastPath(app, handler, cfg.id_fields)
