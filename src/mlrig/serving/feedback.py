"""POST /feedback without the framework: read the body, validate it, store the ground truth.

Rules (each a 4xx naming the record and field, nothing stored): ids follow the client-id rule
of predictions/ids.py (string or integer, 1–128 characters, no NUL); one id may appear once per
request (two values for one id in one request is a client bug, not a correction: 422 naming
it); every id must be one this server's model answered (404 listing them). Ids are per model:
feedback reaches the model this server serves. Feedback for an id that already has some
replaces it (a corrected label). The body is read chunk by chunk and refused with 413 as soon
as it passes ``serving.max_body_bytes``, so a chunked upload is never buffered whole.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping
from typing import Any

import orjson
from pydantic import SecretStr
from starlette.requests import ClientDisconnect

from mlrig.errors import StoreUnavailableError
from mlrig.predictions.ids import check_client_id
from mlrig.predictions.store import PredictionStore
from mlrig.serving.follower import ModelFollower
from mlrig.serving.handlers import Reply, json_reply, token_error
from mlrig.serving.metrics import ServingMetrics
from mlrig.serving.predictor import RequestError

log = logging.getLogger(__name__)

_LISTED = 100  # unknown ids echoed back in a 404, at most


class FeedbackHandler:
    """Answers POST /feedback for the model ``follower`` serves."""

    def __init__(
        self,
        follower: ModelFollower,
        store: PredictionStore,
        metrics: ServingMetrics,
        token: SecretStr | None,
        max_body_bytes: int,
    ) -> None:
        self._follower = follower
        self._store = store
        self._metrics = metrics
        self._token = token
        self.max_body_bytes = max_body_bytes

    async def handle(self, headers: Mapping[str, str], chunks: AsyncIterator[bytes]) -> Reply:
        """``chunks``: the request body as it arrives (e.g. Starlette's ``request.stream()``)."""
        reply = await self._handle(headers, chunks)
        self._metrics.requests.labels("feedback", str(reply.status)).inc()
        return reply

    async def _handle(self, headers: Mapping[str, str], chunks: AsyncIterator[bytes]) -> Reply:
        denied = token_error(headers, self._token, "predictions")
        if denied is not None:
            return denied
        predictor = self._follower.current
        if predictor is None:
            return json_reply({"error": "no model loaded yet"}, 503)
        try:
            body = await read_body(headers, chunks, self.max_body_bytes)
            pairs = parse_feedback(body)
            ids = [p[0] for p in pairs]
            missing = await asyncio.to_thread(self._store.missing_ids, predictor.name, ids)
            if missing:
                return json_reply(_unknown(predictor.name, missing), 404)
            await asyncio.to_thread(self._store.add_feedback, predictor.name, pairs)
        except RequestError as err:
            return json_reply(err.as_dict(), err.status)
        except StoreUnavailableError as err:  # the DB is down: say so, nothing stored half-way
            log.error("feedback not stored: %s", err)  # names the fault, never ids or values
            return json_reply({"error": "prediction store unavailable"}, 503)
        return json_reply({"stored": len(pairs)})


async def read_body(headers: Mapping[str, str], chunks: AsyncIterator[bytes], limit: int) -> bytes:
    """The whole body, or RequestError 413 as soon as it passes ``limit`` bytes (a declared
    Content-Length over the limit is refused before anything is read)."""
    too_large = RequestError(413, f"request body over the limit of {limit} bytes")
    length = headers.get("content-length", "")
    if length.isdigit() and int(length) > limit:
        raise too_large
    parts: list[bytes] = []
    size = 0
    try:
        async for chunk in chunks:
            size += len(chunk)
            if size > limit:
                raise too_large
            parts.append(chunk)
    except ClientDisconnect as exc:
        raise RequestError(400, "client disconnected before the body was complete") from exc
    return b"".join(parts)


def parse_feedback(body: bytes) -> list[tuple[str, float]]:
    """(id, actual) pairs from ``{id, actual}`` or a list of them; RequestError names the
    record and field of the first problem."""
    if not body.strip():
        raise RequestError(400, "empty request body: expected {id, actual} or a list of them")
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise RequestError(400, f"body is not valid JSON ({exc})") from exc
    items = data if isinstance(data, list) else [data]
    if not items:
        raise RequestError(400, "no feedback records in the request body")
    pairs: list[tuple[str, float]] = []
    seen: dict[str, int] = {}
    for i, item in enumerate(items):
        if not isinstance(item, dict) or "id" not in item:
            raise RequestError(
                422, f"record {i}: expected an object with 'id' and 'actual'", i, "id"
            )
        try:
            pid = check_client_id(item["id"])
        except ValueError as exc:
            raise RequestError(422, f"record {i}: 'id' {exc}", i, "id") from exc
        if pid in seen:
            raise RequestError(
                422,
                f"record {i}: id {pid!r} already given in record {seen[pid]}; "
                "send one value per id",
                i,
                "id",
            )
        seen[pid] = i
        actual: Any = item.get("actual")
        if type(actual) not in (int, float):
            raise RequestError(422, f"record {i}: 'actual' must be a number", i, "actual")
        pairs.append((pid, float(actual)))
    return pairs


def _unknown(model_name: str, missing: list[str]) -> dict[str, Any]:
    return {
        "error": f"unknown prediction id {missing[0]!r} for model {model_name!r}",
        "ids": missing[:_LISTED],
        "unknown": len(missing),
    }
