"""Leases in the store: at most one holder per name, across processes and machines.

Prefect's own concurrency limits can keep a slot forever when a worker dies mid-run, so the
loop and every retrain also hold a lease here. A lease is a row with an expiry that a daemon
thread pushes forward while the holder lives; a holder that crashes stops renewing and its
lease lapses after ``ttl`` seconds, or at once when its process is visibly gone from this host.
Taking over is a compare-and-swap on the holder's token, so it works the same on SQLite,
PostgreSQL and MySQL.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import threading
import uuid
from dataclasses import dataclass
from types import TracebackType

import sqlalchemy as sa

from mlrig.errors import StoreUnavailableError
from mlrig.predictions.store import PredictionStore, as_utc, locks

HOST = socket.gethostname()


def train_lock(model: str) -> str:
    """The lease every training of ``model`` holds (run, tune, retrain, scheduled)."""
    return f"train:{model}"


def loop_lock(model: str) -> str:
    """The lease one pass of the closed loop for ``model`` holds."""
    return f"loop:{model}"


@dataclass(frozen=True)
class LockInfo:
    name: str
    holder: str
    host: str
    pid: int
    purpose: str
    acquired_at: dt.datetime
    expires_at: dt.datetime

    def describe(self) -> str:
        return (
            f"{self.name!r} is held by pid {self.pid} on {self.host} ({self.purpose}) since "
            f"{_iso(self.acquired_at)}, lease until {_iso(self.expires_at)}"
        )


class Lease:
    """A held lock; renewed in the background until ``release`` (or the end of a ``with``)."""

    def __init__(self, store: PredictionStore, name: str, holder: str, ttl: float) -> None:
        self.store, self.name, self.holder, self.ttl = store, name, holder, ttl
        self.lost = False  # another holder took it over after a renewal failed for too long
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._renew, name=f"lease:{name}", daemon=True)
        self._thread.start()

    def _renew(self) -> None:
        while not self._stop.wait(self.ttl / 3):
            try:
                with self.store.engine.begin() as conn:
                    done = conn.execute(
                        locks.update()
                        .where(locks.c.name == self.name, locks.c.holder == self.holder)
                        .values(expires_at=_now() + dt.timedelta(seconds=self.ttl))
                    )
                if done.rowcount == 0:
                    self.lost = True
                    return
            except sa.exc.SQLAlchemyError:
                continue  # a store hiccup: try again; the lease lapses only after ttl

    def release(self) -> None:
        self._stop.set()
        self._thread.join()
        with self.store.engine.begin() as conn:
            conn.execute(
                locks.delete().where(locks.c.name == self.name, locks.c.holder == self.holder)
            )

    def __enter__(self) -> Lease:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


def acquire(store: PredictionStore, name: str, purpose: str, ttl: float = 60.0) -> Lease | LockInfo:
    """The lease on ``name``, or who holds it now. A lease that expired, or whose holder's
    process is gone from this host, is taken over."""
    if ttl <= 0:
        raise ValueError("ttl must be positive")
    token = uuid.uuid4().hex
    try:
        with store.engine.begin() as conn:
            current = _current(conn, name)
            now = _now()
            row = {
                "holder": token,
                "host": HOST,
                "pid": os.getpid(),
                "purpose": purpose[:256],
                "acquired_at": now,
                "expires_at": now + dt.timedelta(seconds=ttl),
            }
            if current is None:
                try:
                    with conn.begin_nested():
                        conn.execute(locks.insert().values(name=name, **row))
                except sa.exc.IntegrityError:  # another process inserted it first
                    return _current(conn, name) or _gone(name)
            elif _stale(current, now):
                taken = conn.execute(
                    locks.update()
                    .where(locks.c.name == name, locks.c.holder == current.holder)
                    .values(**row)
                )
                if taken.rowcount == 0:
                    return _current(conn, name) or _gone(name)
            else:
                return current
    except sa.exc.SQLAlchemyError as exc:
        raise StoreUnavailableError(f"prediction store: cannot take lock {name!r} ({exc})") from exc
    return Lease(store, name, token, ttl)


def holder(store: PredictionStore, name: str) -> LockInfo | None:
    """Who holds ``name`` now (None: free, or only a stale lease is left)."""
    with store.engine.connect() as conn:
        current = _current(conn, name)
    return None if current is None or _stale(current, _now()) else current


def _current(conn: sa.Connection, name: str) -> LockInfo | None:
    row = conn.execute(sa.select(locks).where(locks.c.name == name)).mappings().first()
    if row is None:
        return None
    return LockInfo(
        row["name"],
        row["holder"],
        row["host"],
        int(row["pid"]),
        row["purpose"],
        as_utc(row["acquired_at"]),
        as_utc(row["expires_at"]),
    )


def _stale(info: LockInfo, now: dt.datetime) -> bool:
    return info.expires_at <= now or (info.host == HOST and not _alive(info.pid))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a crashed child its parent has not reaped yet is a zombie: it holds nothing
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _gone(name: str) -> LockInfo:
    now = _now()
    return LockInfo(name, "?", "?", 0, "released while we looked", now, now)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _iso(when: dt.datetime) -> str:
    return when.isoformat(timespec="seconds")
