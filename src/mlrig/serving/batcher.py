"""Micro-batching: requests that reach the event loop in the same turn share one ``predict``
call and one hand-off to the group-commit writer.

Under concurrency this turns N estimator calls (≈70 µs each for one row, mostly scikit-learn's
input checks) and N cross-thread wake-ups into one of each; alone, a request pays nothing
extra (its flush runs on the next loop turn).

Each request is answered for what it did: if the shared estimator call fails, every request
of the group is predicted alone, so only the one the model cannot predict fails (with the
estimator's own exception; the handler answers it 500). A request whose client went away
before the flush is skipped; a bug in the flush fails the requests of that flush, never leaves
one waiting. Admission is checked before a request joins: the rows pending here count against
the writer's queue bound.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from dataclasses import dataclass, field

import numpy as np

from mlrig.predictions.records import PredictionBatch
from mlrig.predictions.stages import PREDICT, TURN, StageClock, perf_counter_ns
from mlrig.predictions.writer import GroupCommitWriter
from mlrig.serving.predictor import Batch, Predictor

log = logging.getLogger(__name__)

# (predictions, class probabilities or None, future completing when the rows are committed,
# with the perf_counter_ns() stamp of the writer's wake-up)
Predicted = tuple[np.ndarray, np.ndarray | None, asyncio.Future[int]]


@dataclass
class _Item:
    predictor: Predictor
    batch: Batch
    endpoint: str
    started: float
    future: asyncio.Future[Predicted] = field(repr=False)
    joined_ns: int = 0


_Output = tuple[_Item, np.ndarray, np.ndarray | None]


class PredictBatcher:
    """Predicts and logs validated batches; one instance per event loop."""

    def __init__(self, writer: GroupCommitWriter) -> None:
        self._writer = writer
        self.stages: StageClock = writer.stages
        self._pending: list[_Item] = []
        self._pending_rows = 0

    async def predict(
        self, predictor: Predictor, batch: Batch, endpoint: str, started: float
    ) -> Predicted:
        """Predictions (and probabilities) for ``batch``, and a future that completes when
        they are committed. Raises LogUnavailableError at once when the log cannot take the
        rows, and whatever the estimator raised on this batch."""
        n = len(batch.ids)
        self._writer.admit(n, self._pending_rows)
        loop = asyncio.get_running_loop()
        item = _Item(predictor, batch, endpoint, started, loop.create_future(), perf_counter_ns())
        self._pending.append(item)
        self._pending_rows += n
        if len(self._pending) == 1:
            loop.call_soon(self._flush)
        return await item.future

    def _flush(self) -> None:
        pending, self._pending, self._pending_rows = self._pending, [], 0
        live = [i for i in pending if not i.future.done()]  # a cancelled waiter: client gone
        now, stages = perf_counter_ns(), self.stages
        for i in live:
            stages.add(TURN, now - i.joined_ns)
        try:
            self._predict_and_log(live)
        except Exception as exc:  # a bug here must fail its requests, not leave them waiting
            log.exception("micro-batch flush failed (%d requests)", len(live))
            for i in live:
                if not i.future.done():
                    i.future.set_exception(exc)

    def _predict_and_log(self, items: list[_Item]) -> None:
        groups: dict[int, list[_Item]] = {}
        for item in items:  # a model swap between requests: each version predicts its own
            groups.setdefault(id(item.predictor), []).append(item)
        records: list[PredictionBatch] = []
        done: list[_Output] = []
        for group in groups.values():
            t0 = perf_counter_ns()
            outputs = _predict_group(group)
            self.stages.add(PREDICT, perf_counter_ns() - t0, len(group))
            if not outputs:
                continue
            predictor = group[0].predictor
            now = time.perf_counter()
            created = dt.datetime.now(dt.UTC)
            for i, preds, probs in outputs:
                refused = predictor.unanswerable(preds, probs)
                if refused is not None:  # answered 422 and never logged
                    i.future.set_exception(refused)
                    continue
                records.append(
                    PredictionBatch(
                        i.batch.batch_id,
                        i.batch.ids,
                        i.batch.client_ids,
                        created,
                        predictor.name,
                        predictor.version,
                        i.endpoint,
                        predictor.features,
                        i.batch.x,
                        preds,
                        (now - i.started) * 1000,
                        probs,
                        predictor.classes,
                    )
                )
                done.append((i, preds, probs))
        if not done:
            return
        committed = self._writer.submit(records, len(done))
        for i, preds, probs in done:
            if not i.future.done():
                i.future.set_result((preds, probs, committed))


def _predict_group(items: list[_Item]) -> list[_Output]:
    """One estimator call for the group; if it fails, one call per request, and each request
    that still fails gets its own exception."""
    predictor = items[0].predictor
    try:
        xs = [i.batch.x for i in items]
        x = xs[0] if len(xs) == 1 else np.vstack(xs)
        y, proba = predictor.predict(x)
        if len(y) != len(x) or (proba is not None and len(proba) != len(x)):
            # never answer (or log) one request with another's rows
            raise ValueError(f"the model returned {len(y)} predictions for {len(x)} rows")
    except Exception as exc:
        if len(items) == 1:
            items[0].future.set_exception(exc)
            return []
        return [out for i in items for out in _predict_group([i])]
    outputs: list[_Output] = []
    offset = 0
    for i in items:
        n = len(i.batch.x)
        outputs.append(
            (i, y[offset : offset + n], None if proba is None else proba[offset : offset + n])
        )
        offset += n
    return outputs
