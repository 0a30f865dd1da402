"""Group commit: many concurrent requests share one transaction, each waits for its commit.

A single writer thread drains everything queued since its last commit, writes it in one
transaction and then wakes every waiting request. Under load one fsync covers dozens of
predictions; at rest a request pays one commit. A request is answered only after its rows are
committed, so an acknowledged prediction survives ``kill -9``.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Sequence
from typing import NamedTuple

from mlrig.errors import StoreUnavailableError
from mlrig.predictions.records import PredictionBatch
from mlrig.predictions.store import PredictionStore

log = logging.getLogger(__name__)


class _Pending(NamedTuple):
    """Rows waiting for a commit, and how to wake the request that sent them."""

    batches: Sequence[PredictionBatch]
    future: asyncio.Future[None]
    loop: asyncio.AbstractEventLoop


_STOP = None  # queued by stop(): commit what came before, then end


class GroupCommitWriter:
    """Owns the store's write path; ``write`` is awaited from any asyncio event loop."""

    def __init__(
        self, store: PredictionStore, window_ms: float = 0.0, max_rows: int = 20_000
    ) -> None:
        self._store = store
        self._window_s = window_ms / 1000
        self._max_rows = max_rows
        self._queue: queue.SimpleQueue[_Pending | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._loop, name="mlrig-group-commit", daemon=True)
        self.commits = 0
        self.rows_written = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Commit what is queued, then end the thread."""
        if self._thread.is_alive():
            self._queue.put(_STOP)
            self._thread.join(timeout)

    def submit(self, batches: Sequence[PredictionBatch]) -> asyncio.Future[None]:
        """Queue ``batches``; the future completes once they are committed, or fails with
        StoreUnavailableError. Call from a running event loop."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self._queue.put(_Pending(batches, future, loop))
        return future

    async def write(self, batches: Sequence[PredictionBatch]) -> None:
        """Return once ``batches`` are committed; raises StoreUnavailableError if they were not."""
        await self.submit(batches)

    def _loop(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is _STOP:
                break
            batch = [first]
            n = _rows(first)
            deadline = time.monotonic() + self._window_s
            while n < self._max_rows:
                timeout = deadline - time.monotonic()
                try:
                    item = (
                        self._queue.get(timeout=timeout)
                        if timeout > 0
                        else self._queue.get_nowait()
                    )
                except queue.Empty:
                    break
                if item is _STOP:
                    stopping = True
                    break
                batch.append(item)
                n += _rows(item)
            self._commit(batch)

    def _commit(self, batch: list[_Pending]) -> None:
        batches = [b for pending in batch for b in pending.batches]
        n = sum(b.n_rows for b in batches)
        error: Exception | None = None
        try:
            self._store.insert_batches(batches)
            self.commits += 1
            self.rows_written += n
        except Exception as exc:  # any DB failure: nobody in this batch is acknowledged
            log.error("prediction store write failed (%d rows): %s", n, exc)
            error = StoreUnavailableError(f"prediction store: write failed ({type(exc).__name__})")
        for pending in batch:
            pending.loop.call_soon_threadsafe(_settle, pending.future, error)


def _rows(pending: _Pending) -> int:
    return sum(b.n_rows for b in pending.batches)


def _settle(future: asyncio.Future[None], error: Exception | None) -> None:
    if future.done():
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)
