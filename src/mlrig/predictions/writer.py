"""Group commit: many concurrent requests share one transaction, each waits for its commit.

A single writer thread drains everything queued since its last commit, writes it in one
transaction and then wakes every waiting request. Under load one fsync covers dozens of
predictions; at rest a request pays one commit. A request is answered only after its rows are
committed, so an acknowledged prediction survives ``kill -9``.

Overload and faults never make a request wait forever or memory grow without bound:

- The writer holds at most ``max_queued_rows`` rows (queued or being committed); ``admit``
  refuses more with LogUnavailableError (HTTP 503 + Retry-After). One request larger than the
  bound is still admitted when nothing else waits, so no valid batch is refused forever.
- Each submission has a deadline (``commit_timeout_ms``): past it the waiting requests fail with
  LogUnavailableError. Their rows stay queued and are committed if the store recovers — the log
  is *at-least-once*: a 503'd request may still be in the log; a retry with the same client id
  is deduplicated by the store's id index (it keeps the first: "on conflict do nothing"), so
  feedback for that id joins the first prediction. (The retry's request row is stored too:
  reading the log back shows one row per attempt until the store dedupes on read.)
- If the writer thread dies (an exception escaping it: a bug), everything it holds fails at once
  and every later submission is refused immediately; ``health()`` says so (/ready answers 503).

When the store is unreachable and a spool is configured (spool.py, replay.py), a group whose
commit fails with StoreUnavailableError is written durably to the local spool instead and its
requests are acknowledged; while the spool holds anything, new groups go there too (order is kept), and a
replay thread moves the spooled batches into the store, oldest first, with back-off. Only a
group the spool cannot take (directory not writable, over its size limit) is answered 503.

The hot path stays lock-free: the queued-row count is two counters each written by one thread
(submitted rows by the event loop, settled rows by the writer thread).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from mlrig.errors import StoreUnavailableError
from mlrig.predictions.records import PredictionBatch
from mlrig.predictions.replay import SpoolHealth, SpoolReplay
from mlrig.predictions.spool import Spool
from mlrig.predictions.stages import COMMIT, HANDOFF, StageClock, perf_counter_ns
from mlrig.predictions.store import PredictionStore

log = logging.getLogger(__name__)


class LogUnavailableError(StoreUnavailableError):
    """The prediction log cannot take or commit these rows now; retry after ``retry_after_s``."""

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class _Pending(NamedTuple):
    """Rows waiting for a commit, and how to wake the requests that sent them."""

    batches: Sequence[PredictionBatch]
    n_rows: int
    future: asyncio.Future[int]
    loop: asyncio.AbstractEventLoop
    timer: asyncio.TimerHandle
    n_requests: int
    queued_ns: int  # perf_counter_ns() at submit: the hand-off stage starts


_STOP = None  # queued by stop(): commit what came before, then end


@dataclass(frozen=True)
class WriterHealth:
    """A snapshot of the writer for /ready and /metrics (times in seconds)."""

    alive: bool
    queued_rows: int  # queued or being committed
    max_queued_rows: int
    commit_running_s: float | None  # how long the commit in progress has run
    last_commit_age_s: float | None
    commits: int
    commit_failures: int
    last_error: str | None
    refused: int  # requests refused at admission (log full, or writer dead)
    timed_out: int  # requests whose commit missed its deadline
    deadline_s: float
    spool: SpoolHealth | None = None

    def problem(self) -> str | None:
        """Why the server should not take traffic now, or None when it can."""
        if not self.alive:
            return f"prediction log writer is not running ({self.last_error or 'stopped'})"
        if self.spool is not None and self.spool.error is not None:
            return f"prediction store unreachable and the {self.spool.error}"
        if self.queued_rows >= self.max_queued_rows:
            return (
                f"prediction log queue is full: {self.queued_rows} of {self.max_queued_rows} rows"
            )
        if self.commit_running_s is not None and self.commit_running_s > self.deadline_s:
            return (
                f"a prediction log commit has run {self.commit_running_s:.1f} s "
                f"(deadline {self.deadline_s:g} s): the store is stalled"
            )
        return None

    def as_check(self) -> dict[str, Any]:
        """The /ready ``checks.writer`` entry."""
        problem = self.problem()
        return {
            "ok": problem is None,
            **({"problem": problem} if problem else {}),
            "alive": self.alive,
            "queued_rows": self.queued_rows,
            "max_queued_rows": self.max_queued_rows,
            "commit_running_s": _round(self.commit_running_s),
            "last_commit_age_s": _round(self.last_commit_age_s),
            "commit_failures": self.commit_failures,
            "last_error": self.last_error,
        }


class GroupCommitWriter:
    """Owns the store's write path; ``write`` is awaited from an asyncio event loop.

    ``admit`` and ``submit`` must be called from one thread (the server's event loop): they
    are what keeps the queue bound without a lock.
    """

    def __init__(
        self,
        store: PredictionStore,
        window_ms: float = 0.0,
        max_rows: int = 20_000,
        *,
        max_queued_rows: int = 50_000,
        commit_timeout_ms: float = 5_000.0,
        retry_after_s: int = 1,
        spool: Spool | None = None,
        replay_interval_s: float = 1.0,
        replay_max_rows: int = 5_000,
        replay_max_backoff_s: float = 10.0,
        stages: StageClock | None = None,
    ) -> None:
        self._store = store
        self.stages = stages if stages is not None else StageClock()
        self._replay = (
            None
            if spool is None
            else SpoolReplay(spool, store, replay_interval_s, replay_max_rows, replay_max_backoff_s)
        )
        self._window_s = window_ms / 1000
        self._max_rows = max_rows
        self.max_queued_rows = max_queued_rows
        self._timeout_s = commit_timeout_ms / 1000
        self._retry_after_s = retry_after_s
        self._queue: queue.SimpleQueue[_Pending | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._loop, name="mlrig-group-commit", daemon=True)
        self._submitted_rows = 0  # written by the event loop only
        self._settled_rows = 0  # written by the writer thread only
        self._holding: list[_Pending] = []  # the batch being committed (writer thread)
        self._commit_started: float | None = None
        self._last_commit: float | None = None
        self._down: str | None = None  # set once the thread has ended: why
        self.crashed: str | None = None  # set if it ended by an escaping exception (a bug)
        self.commits = 0
        self.rows_written = 0
        self.commit_failures = 0
        self.last_error: str | None = None
        self.refused = 0
        self.timed_out = 0
        self.peak_queued_rows = 0

    @property
    def queued_rows(self) -> int:
        """Rows submitted and not yet committed or failed."""
        return self._submitted_rows - self._settled_rows

    def start(self) -> None:
        if self._replay is not None:
            self._replay.start()  # before the first group: an earlier run's spool goes first
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Commit (or spool) what is queued, then end the threads; a non-empty spool stays
        on disk and is replayed by the next start."""
        if self._thread.is_alive():
            self._queue.put(_STOP)
            self._thread.join(timeout)
        if self._replay is not None:
            self._replay.stop(timeout)

    def health(self) -> WriterHealth:
        now = time.monotonic()
        started, last = self._commit_started, self._last_commit
        return WriterHealth(
            alive=self._thread.is_alive() and self._down is None,
            queued_rows=self.queued_rows,
            max_queued_rows=self.max_queued_rows,
            commit_running_s=None if started is None else now - started,
            last_commit_age_s=None if last is None else now - last,
            commits=self.commits,
            commit_failures=self.commit_failures,
            last_error=self._down or self.last_error,
            refused=self.refused,
            timed_out=self.timed_out,
            deadline_s=self._timeout_s,
            spool=None if self._replay is None else self._replay.health(),
        )

    def admit(self, n_rows: int, reserved: int = 0) -> None:
        """Raise LogUnavailableError if ``n_rows`` more rows (on top of ``reserved`` ones
        already promised to a coming submit) would overflow the queue, or the writer is down."""
        if self._down is not None:
            self.refused += 1
            raise self._error(f"prediction log writer is not running ({self._down})")
        backlog = self.queued_rows + reserved
        if backlog and backlog + n_rows > self.max_queued_rows:
            self.refused += 1
            raise self._error(
                f"prediction log is full: {backlog} rows waiting for the store "
                f"(limit {self.max_queued_rows}); retry later"
            )

    def submit(
        self, batches: Sequence[PredictionBatch], n_requests: int = 1
    ) -> asyncio.Future[int]:
        """Queue ``batches`` (from ``n_requests`` requests); the future completes once they are
        committed, with the ``perf_counter_ns()`` at which the writer sent the wake-up (the
        wake stage starts), or fails with StoreUnavailableError (the commit failed, the
        writer is down, or the deadline passed first). Call from a running event loop."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[int] = loop.create_future()
        if self._down is not None:
            _settle(future, self._error(f"prediction log writer is not running ({self._down})"))
            return future
        n = sum(b.n_rows for b in batches)
        timer = loop.call_later(self._timeout_s, self._expire, future, n_requests)
        self._submitted_rows += n
        self.peak_queued_rows = max(self.peak_queued_rows, self.queued_rows)
        self._queue.put(_Pending(batches, n, future, loop, timer, n_requests, perf_counter_ns()))
        return future

    async def write(self, batches: Sequence[PredictionBatch]) -> None:
        """Return once ``batches`` are committed; raises StoreUnavailableError if they were not."""
        await self.submit(batches)

    def _error(self, message: str) -> LogUnavailableError:
        return LogUnavailableError(message, self._retry_after_s)

    def _expire(self, future: asyncio.Future[int], n_requests: int) -> None:
        if future.done():
            return
        self.timed_out += n_requests
        _settle(
            future,
            self._error(
                f"prediction log: not committed within {self._timeout_s * 1000:g} ms; "
                "the prediction may still be logged later, retry with the same id"
            ),
        )

    def _loop(self) -> None:
        try:
            self._run()
            self._down = "stopped"
        except BaseException as exc:  # a bug: fail fast and loudly instead of hanging requests
            self._down = self.crashed = f"writer thread died: {type(exc).__name__}"
            log.critical("prediction log writer thread died", exc_info=True)
        finally:
            self._fail_everything()

    def _run(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is _STOP:
                break
            batch = [first]
            n = first.n_rows
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
                n += item.n_rows
            picked = perf_counter_ns()
            for pending in batch:
                self.stages.add(HANDOFF, picked - pending.queued_ns, pending.n_requests)
            self._holding = batch
            self._commit(batch, n)
            self._holding = []

    def _commit(self, batch: list[_Pending], n: int) -> None:
        batches = [b for pending in batch for b in pending.batches]
        error: Exception | None = None
        replay = self._replay
        started = perf_counter_ns()
        self._commit_started = time.monotonic()
        try:
            if replay is not None and replay.spooling:  # nothing overtakes the spool ...
                error = self._to_spool(replay, batches)
                if error is not None and self._insert_directly(batches, n):
                    error = replay.error = None  # ... unless it refuses, and the store takes them
            else:
                self._store.insert_batches(batches)
                self.commits += 1
                self.rows_written += n
                self._last_commit = time.monotonic()
                if replay is not None:
                    replay.store_answered()
        except StoreUnavailableError as exc:
            self._failed(exc, n)
            if replay is None:
                error = self._error(f"prediction store: write failed ({type(exc).__name__})")
            else:
                error = self._to_spool(replay, batches)
        except Exception as exc:  # a fault outside the store's own: nobody is acknowledged
            self._failed(exc, n)
            error = self._error(f"prediction store: write failed ({type(exc).__name__})")
        finally:
            self._commit_started = None
        took = perf_counter_ns() - started
        for pending in batch:
            self.stages.add(COMMIT, took, pending.n_requests)
        self._wake(batch, error)

    def _failed(self, exc: Exception, n: int) -> None:
        self.commit_failures += 1
        self.last_error = _reason(exc)
        log.error("prediction store write failed (%d rows): %s", n, self.last_error)

    def _insert_directly(self, batches: list[PredictionBatch], n: int) -> bool:
        """Commit to the store past a spool that refused: these rows land out of order, but
        they land. False if the store refuses too."""
        try:
            self._store.insert_batches(batches)
        except StoreUnavailableError as exc:
            self._failed(exc, n)
            return False
        self.commits += 1
        self.rows_written += n
        self._last_commit = time.monotonic()
        return True

    def _to_spool(
        self, replay: SpoolReplay, batches: list[PredictionBatch]
    ) -> LogUnavailableError | None:
        """Spool ``batches`` durably; None when done, else the error their requests get."""
        refused = replay.take(batches)
        if refused is None:
            return None
        return self._error(
            f"prediction store unreachable ({self.last_error or 'spool not drained'}) "
            f"and the {refused}; nothing of this request was logged, retry later"
        )

    def _wake(self, batch: list[_Pending], error: Exception | BaseException | None) -> None:
        result: int | BaseException = perf_counter_ns() if error is None else error
        for pending in batch:
            self._settled_rows += pending.n_rows
            # RuntimeError: that event loop is closed, nobody is waiting any more
            with contextlib.suppress(RuntimeError):
                pending.loop.call_soon_threadsafe(_settle, pending.future, result, pending.timer)

    def _fail_everything(self) -> None:
        """The thread is ending: fail what it holds and what is still queued."""
        error = self._error(f"prediction log writer is not running ({self._down})")
        held, self._holding = self._holding, []
        self._commit_started = None
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is not _STOP:
                held.append(item)
        self._wake(held, error)


def _settle(
    future: asyncio.Future[int],
    outcome: int | BaseException,
    timer: asyncio.TimerHandle | None = None,
) -> None:
    """On the loop: complete ``future`` with the wake-up stamp, or fail it."""
    if timer is not None:
        timer.cancel()
    if future.done():
        return
    if isinstance(outcome, int):
        future.set_result(outcome)
    else:
        future.set_exception(outcome)
        future.exception()  # retrieved: requests that gave up waiting leave no asyncio warning


def _reason(exc: BaseException) -> str:
    """The exception class and the driver's first line: never the SQL or its bound values."""
    text = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    first = text[0][:200] if text else ""
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def _round(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds, 3)
