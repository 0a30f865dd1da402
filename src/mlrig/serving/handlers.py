"""The prediction routes as framework-free handlers: headers and body bytes in, a Reply out.

Both the FastAPI routes (which also document the API) and the raw-ASGI fast path in front of
them (fastpath.py) call these, so the behaviour is one piece of code.
"""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson
from pydantic import SecretStr

from mlrig.errors import StoreUnavailableError
from mlrig.predictions.stages import ANSWER, PARSE, WAKE, perf_counter_ns
from mlrig.serving import v2
from mlrig.serving.batcher import PredictBatcher
from mlrig.serving.follower import ModelFollower
from mlrig.serving.metrics import ServingMetrics
from mlrig.serving.predictor import Batch, Predictor, RequestError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


def json_reply(obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> Reply:
    return Reply(status, orjson.dumps(obj, option=orjson.OPT_SERIALIZE_NUMPY), headers or {})


def token_error(headers: Mapping[str, str], expected: SecretStr | None, what: str) -> Reply | None:
    """None when authorised; else 401 (no/malformed token) or 403 (wrong token, or disabled).

    ``what`` = "predictions" is open when no token is set; "admin" is then disabled.
    """
    if expected is None:
        if what == "predictions":
            return None
        return json_reply(
            {"error": f"{what} endpoints are disabled: set MLRIG_ADMIN_TOKEN to enable them"}, 403
        )
    scheme, _, token = headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        return json_reply(
            {"error": f"{what} require 'Authorization: Bearer <token>'"},
            401,
            {"WWW-Authenticate": "Bearer"},
        )
    if not hmac.compare_digest(token.encode(), expected.get_secret_value().encode()):
        return json_reply({"error": "invalid token"}, 403)
    return None


@dataclass(frozen=True)
class Protocol:
    """How one prediction route reads a body, answers, and words its errors."""

    endpoint: str
    parse: Callable[[Predictor, bytes, str], Batch]
    answer: Callable[[Predictor, Batch, np.ndarray, np.ndarray | None], Reply]
    error: Callable[[RequestError], dict[str, Any]]


def _answer_predict(
    p: Predictor, batch: Batch, preds: np.ndarray, proba: np.ndarray | None
) -> Reply:
    records = [
        {"id": i, "prediction": y, "model": p.name, "version": p.version}
        for i, y in zip(batch.ids, p.answer_values(preds), strict=True)
    ]
    if proba is not None:
        key = "probability" if p.classes is not None and len(p.classes) == 2 else "probabilities"
        for record, value in zip(records, p.answer_probabilities(proba), strict=True):
            record[key] = value
    body: dict[str, Any] = {"model": p.name, "version": p.version, "predictions": records}
    name = batch.id_name
    if name is not None and name != "id":  # echo the client's own id field (the zoomcamp's ride_id)
        for record in records:
            record[name] = record["id"]
        if len(records) == 1:
            body[name] = records[0]["id"]
    return json_reply(body)


def _answer_invocations(
    p: Predictor, _batch: Batch, preds: np.ndarray, proba: np.ndarray | None
) -> Reply:
    if proba is None:
        return json_reply({"predictions": preds}, headers={"X-Model-Version": p.version})
    # MLflow clients read "predictions" (labels); the extra keys carry what monitoring needs.
    body = {"predictions": p.answer_values(preds), "probabilities": proba, "classes": p.classes}
    return json_reply(body, headers={"X-Model-Version": p.version})


def _mlflow_error(err: RequestError) -> dict[str, Any]:
    return {"error_code": "BAD_REQUEST", "message": err.message, **err.as_dict()}


PREDICT = Protocol(
    "predict", lambda p, body, _ctype: p.parse_predict(body), _answer_predict, RequestError.as_dict
)
INVOCATIONS = Protocol(
    "invocations",
    lambda p, body, ctype: p.parse_invocation(body, ctype),
    _answer_invocations,
    _mlflow_error,
)


def v2_infer(
    name: str, version: str | None, headers: Mapping[str, str], id_patterns: Sequence[str]
) -> Protocol:
    """The Open Inference Protocol's infer route for the model ``name`` (and ``version``) of
    the path; made per request, as the path and the binary-data header are part of it."""
    header_length = headers.get("inference-header-content-length")

    def parse(p: Predictor, body: bytes, _ctype: str) -> Batch:
        return v2.parse_infer(p, body, name, version, header_length, id_patterns)

    def answer(p: Predictor, batch: Batch, preds: np.ndarray, proba: np.ndarray | None) -> Reply:
        return json_reply(v2.answer(p, batch, preds, proba))

    return Protocol("v2", parse, answer, v2.error)


class PredictionHandler:
    """Authorise, validate, predict, wait for the durable log, answer; counts everything."""

    def __init__(
        self,
        follower: ModelFollower,
        batcher: PredictBatcher,
        metrics: ServingMetrics,
        predict_token: SecretStr | None,
        max_body_bytes: int,
    ) -> None:
        self._follower = follower
        self._batcher = batcher
        self._stages = batcher.stages
        self._metrics = metrics
        self._token = predict_token
        self.max_body_bytes = max_body_bytes

    def too_large(self) -> RequestError:
        return RequestError(413, f"request body over the limit of {self.max_body_bytes} bytes")

    async def handle(
        self, protocol: Protocol, headers: Mapping[str, str], body: bytes | RequestError
    ) -> Reply:
        """``body`` is the request body, or the error met while reading it (e.g. too large)."""
        t0 = time.perf_counter()
        reply = await self._handle(protocol, headers, body, t0)
        elapsed = time.perf_counter() - t0
        self._metrics.requests.labels(protocol.endpoint, str(reply.status)).inc()
        self._metrics.latency.labels(protocol.endpoint).observe(elapsed)
        self._metrics.record(elapsed)
        return reply

    async def _handle(
        self, protocol: Protocol, headers: Mapping[str, str], body: bytes | RequestError, t0: float
    ) -> Reply:
        denied = token_error(headers, self._token, "predictions")
        if denied is not None:
            return denied
        predictor = self._follower.current
        if predictor is None:
            return json_reply({"error": "no model loaded yet"}, 503)
        try:
            if isinstance(body, RequestError):
                raise body
            stages, parse_ns = self._stages, perf_counter_ns()
            batch = protocol.parse(predictor, body, headers.get("content-type", ""))
            stages.add(PARSE, perf_counter_ns() - parse_ns)
            preds, proba, committed = await self._batcher.predict(
                predictor, batch, protocol.endpoint, t0
            )
            woken = await committed
            answer_ns = perf_counter_ns()
            stages.add(WAKE, answer_ns - woken)
        except RequestError as err:
            return json_reply(protocol.error(err), err.status)
        except StoreUnavailableError as err:  # the log cannot keep up or is down: retry later
            retry = str(getattr(err, "retry_after_s", 1))
            return json_reply({"error": str(err)}, 503, {"Retry-After": retry})
        except Exception as exc:  # a bug, or the model failing on this request: its own 500
            log.exception(
                "%s: model %s v%s failed", protocol.endpoint, predictor.name, predictor.version
            )
            message = (
                f"internal error ({type(exc).__name__}): model {predictor.name} "
                f"version {predictor.version} could not answer this request"
            )
            return json_reply({"error": message}, 500)
        self._metrics.logged.inc(len(batch.ids))
        reply = protocol.answer(predictor, batch, preds, proba)
        stages.add(ANSWER, perf_counter_ns() - answer_ns)
        return reply
