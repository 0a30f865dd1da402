"""A raw-ASGI front for the hot routes: POST /predict, POST /invocations and the V2 infer routes
(POST /v2/models/{name}[/versions/{version}]/infer) are answered
here, without Starlette's request objects, routing or FastAPI's dependency solving (about half
the cost of a minimal FastAPI endpoint). Every other request — docs, health, feedback, admin,
lifespan — goes to the FastAPI app unchanged, which still documents the hot routes too.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mlrig.predictions.ids import DEFAULT_ID_FIELDS
from mlrig.serving.handlers import INVOCATIONS, PREDICT, PredictionHandler, Protocol, v2_infer
from mlrig.serving.predictor import RequestError
from mlrig.serving.v2 import infer_target

Scope = dict[str, Any]
_ROUTES: dict[str, Protocol] = {"/predict": PREDICT, "/invocations": INVOCATIONS}


class FastPath:
    def __init__(
        self,
        app: Any,
        handler: PredictionHandler,
        id_patterns: Sequence[str] = DEFAULT_ID_FIELDS,
    ) -> None:
        self.app = app
        self._handler = handler
        self._ids = id_patterns

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        route: Protocol | tuple[str, str | None] | None = _ROUTES.get(path)
        if route is None and path.startswith("/v2/models/"):
            route = infer_target(path)
        if route is None or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        # V2 infer: made per request, as the path and a header are part of it
        protocol = route if isinstance(route, Protocol) else v2_infer(*route, headers, self._ids)
        body = await self._read(headers, receive)
        reply = await self._handler.handle(protocol, headers, body)
        out = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(reply.body)).encode()),
        ]
        out += [
            (k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in reply.headers.items()
        ]
        await send({"type": "http.response.start", "status": reply.status, "headers": out})
        await send({"type": "http.response.body", "body": reply.body})

    async def _read(self, headers: dict[str, str], receive: Any) -> bytes | RequestError:
        limit = self._handler.max_body_bytes
        length = headers.get("content-length", "")
        # isascii: "²".isdigit() is True but int("²") raises (uvicorn's parsers refuse it first)
        if length.isascii() and length.isdigit() and int(length) > limit:
            return self._handler.too_large()  # answered without reading the body
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return RequestError(400, "client disconnected")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                return self._handler.too_large()
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)
