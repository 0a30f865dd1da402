"""The writer's side of the spool: when to spool, and the thread that replays it.

While the spool holds anything (this process's groups, or an earlier run's), ``spooling`` is
true and the writer appends every new group to it, so nothing overtakes what waits there. The
replay thread moves the oldest batches into the store and deletes them once committed; when it
finds the spool empty it switches ``spooling`` off, under the same lock as ``take``, so no group
can slip in between the last read and the switch. While the store keeps failing it backs off,
doubling the wait up to ``max_backoff_s``; appends after the first do not wake it (a retry
storm on a database that is down helps nobody).

Several replicas may share one spool file: the one holding its replay lease replays, the others
only re-read the counts, and each switches its own ``spooling`` off once the file is empty.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from mlrig.errors import StoreUnavailableError
from mlrig.predictions.faults import describe, store_faults
from mlrig.predictions.records import PredictionBatch
from mlrig.predictions.spool import Spool, SpoolError
from mlrig.predictions.store import PredictionStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SpoolHealth:
    """The spool part of the writer's health: what is waiting for the store, and since when."""

    path: str
    spooling: bool  # new groups go to the spool (it holds batches not yet replayed)
    batches: int
    rows: int
    quarantined: int  # damaged records set aside (never replayed)
    replayed_batches: int
    spooled_batches: int  # by this process, since start
    down_since: str | None  # ISO time of the first failed commit of this outage
    error: str | None  # why the spool refused the last group (requests got 503)
    last_replay_error: str | None

    def as_check(self) -> dict[str, Any]:
        """The /ready ``checks.spool`` entry: spooling is not a failure, a refused spool is."""
        if self.error is not None:
            state = f"the {self.error}"
        elif self.spooling or self.batches:
            since = f" since {self.down_since}" if self.down_since else ""
            state = (
                f"database unreachable{since}, {self.batches} batches / {self.rows} rows "
                "spooled (replayed when it answers)"
            )
        else:
            state = "empty"
        return {
            "ok": self.error is None,
            **({"problem": state} if self.error else {"state": state}),
            "path": self.path,
            "batches": self.batches,
            "rows": self.rows,
            "quarantined": self.quarantined,
            "replayed_batches": self.replayed_batches,
            "down_since": self.down_since,
            "last_replay_error": self.last_replay_error,
        }


class SpoolReplay:
    """Spools groups for the writer thread and replays them on a thread of its own."""

    def __init__(
        self,
        spool: Spool,
        store: PredictionStore,
        interval_s: float = 1.0,
        max_rows: int = 5_000,
        max_backoff_s: float = 10.0,
    ) -> None:
        self.spool = spool
        self._store = store
        self._interval_s = interval_s
        self._max_rows = max_rows
        self._max_backoff_s = max(max_backoff_s, interval_s)
        self._lock = threading.Lock()  # appending vs. deciding the spool is empty
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="mlrig-spool-replay", daemon=True)
        self.spooling = False
        self.down_since: str | None = None
        self.error: str | None = None
        self.last_error: str | None = None
        self.spooled_batches = 0
        self.replayed_batches = 0

    def start(self) -> None:
        """Start replaying; a spool left by an earlier run makes new groups queue behind it."""
        try:
            self.spooling = self.spool.exists() and self.spool.refresh().batches > 0
        except SpoolError as exc:
            log.error("prediction log: %s", exc)
        if self.spooling:
            log.warning(
                "prediction log: %d spooled batches in %s from an earlier run: replaying",
                self.spool.stats.batches,
                self.spool.path,
            )
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        if self._thread.is_alive():
            self._stop.set()
            self._wake.set()
            self._thread.join(timeout)
        self.spool.close()

    def take(self, batches: Sequence[PredictionBatch]) -> SpoolError | None:
        """Spool ``batches`` durably (writer thread); None when done, else why not."""
        with self._lock:
            try:
                self.spool.append(batches)
            except SpoolError as exc:
                self.error = str(exc)
                log.error("prediction log: %s", exc)
                return exc
            started = not self.spooling
            if started:
                log.warning("prediction log: store unreachable, spooling to %s", self.spool.path)
                self.down_since = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
            self.spooling = True
            self.error = None
            self.spooled_batches += len(batches)
        if started:
            self._wake.set()
        return None

    def store_answered(self) -> None:
        """A direct commit succeeded: no outage, no refused spool."""
        self.down_since = self.error = None

    def health(self) -> SpoolHealth:
        stats = self.spool.stats  # kept by the threads that touch the file: no I/O here
        return SpoolHealth(
            path=str(self.spool.path),
            spooling=self.spooling,
            batches=stats.batches,
            rows=stats.rows,
            quarantined=stats.quarantined,
            replayed_batches=self.replayed_batches,
            spooled_batches=self.spooled_batches,
            down_since=self.down_since,
            error=self.error,
            last_replay_error=self.last_error,
        )

    def _loop(self) -> None:
        """Never ends on an error: a dead replay would strand the spool."""
        wait = self._interval_s
        while not self._stop.is_set():
            self._wake.wait(wait)
            self._wake.clear()
            if self._stop.is_set():
                break
            try:
                if self.error is not None and not self.spooling:
                    self._probe_store()
                more = self._replay_once()
            except (StoreUnavailableError, OSError) as exc:  # SpoolError is a StoreUnavailable
                self.last_error = describe(exc) if not isinstance(exc, SpoolError) else str(exc)
                wait = min(max(wait, self._interval_s) * 2, self._max_backoff_s)
                log.warning("prediction log: replay failed, next try in %.1f s: %s", wait, exc)
                continue
            except Exception:  # a bug: say so loudly, keep the spool, try again later
                log.exception("prediction log: replay failed")
                wait = self._max_backoff_s
                continue
            self.last_error = None
            wait = 0.0 if more else self._interval_s

    def _replay_once(self) -> bool:
        """Replay the oldest spooled batches; True when more may wait."""
        spool = self.spool
        if not spool.exists():
            return False
        with spool.replay_lease() as mine:
            if not mine:  # another replica replays this file; just keep the counts fresh
                self._clear_if_empty()
                return False
            group = spool.oldest(self._max_rows)
            if group is None:
                self._clear_if_empty()
                return False
            if group.batches:
                # a refusal is retried, never skipped: a store that answers but cannot write
                # (disk full, read-only) looks the same as one that refuses a batch
                self._store.insert_batches(group.batches)
            spool.delete_through(group.last_seq)
            self.replayed_batches += len(group.batches)
            return True

    def _probe_store(self) -> None:
        """The spool refused a group and /ready says so; once the store answers again, stop
        saying it (no traffic may come to prove it while /ready is 503)."""
        with store_faults("answer a probe"), self._store.engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
        self.error = self.down_since = None

    def _clear_if_empty(self) -> None:
        with self._lock:  # no append can slip in between the count and the switch
            if self.spool.refresh().batches == 0 and self.spooling:
                self.spooling = False
                self.down_since = None
                log.warning(
                    "prediction log: spool %s replayed, writing to the store again",
                    self.spool.path,
                )
