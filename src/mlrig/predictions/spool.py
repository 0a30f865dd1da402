"""A durable local spool for the prediction log while the store is unreachable.

When a group commit fails with StoreUnavailableError, the writer appends the group here (one
SQLite transaction, ``synchronous=FULL``: on disk before any request is acknowledged) and keeps
answering. A replay moves the spooled batches, oldest first, into the store and deletes each
group only after the store committed it; ``insert_batches`` ignores a batch it already has
(ON CONFLICT DO NOTHING on batch_id and on (model_name, id)), so a crash between "stored" and
"deleted here" only repeats a no-op.

Why SQLite: it gives atomic appends (a half-written group is rolled back on the next open, never
read), locking between the replicas of one home, and ordered reads, without a format of our
own. Each record also carries a CRC-32 of its bytes: a record that fails it (a damaged file) is
moved to ``quarantine`` and reported, never replayed as garbage. Batches are stored as JSON
metadata plus little-endian float64 blobs (no pickle: the file is data, not code).

One replica at a time replays a spool file: it holds an ``flock`` on ``<file>.replay.lock``,
which the kernel releases if that process dies (``kill -9`` included).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import hashlib
import logging
import sqlite3
import threading
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
import orjson
import sqlalchemy as sa

from mlrig.errors import StoreUnavailableError
from mlrig.predictions.records import PredictionBatch

log = logging.getLogger(__name__)

_FORMAT = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS batches (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    batch_id TEXT NOT NULL,
    n_rows INTEGER NOT NULL,
    meta BLOB NOT NULL,
    x BLOB NOT NULL,
    predictions BLOB NOT NULL,
    probabilities BLOB,
    crc INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS quarantine (
    seq INTEGER PRIMARY KEY,
    batch_id TEXT NOT NULL,
    reason TEXT NOT NULL,
    at TEXT NOT NULL,
    meta BLOB, x BLOB, predictions BLOB, probabilities BLOB, crc INTEGER
);
"""


class SpoolError(StoreUnavailableError):
    """The spool cannot take these rows (directory not writable, disk full, over its size
    limit): the writer answers 503 naming ``path`` and ``reason``."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"local spool {path} cannot be written: {reason}")
        self.path = path
        self.reason = reason


@dataclass(frozen=True)
class SpoolStats:
    """What the spool file holds: re-read by ``refresh()`` (all replicas' batches), kept up to
    date in between by this process's own appends and deletes."""

    batches: int
    rows: int
    quarantined: int


@dataclass(frozen=True)
class SpooledGroup:
    """The oldest spooled batches, ready for the store; ``last_seq`` deletes them."""

    batches: list[PredictionBatch]
    last_seq: int
    rejected: int  # records that failed their checksum (moved to quarantine)


def spool_file(spool_dir: Path, store_url: str) -> Path:
    """One file per store: a spool is never replayed into another database than its own.
    Named by a hash of the URL without its password."""
    safe = sa.engine.make_url(store_url).render_as_string(hide_password=True)
    return spool_dir / f"predictions-{hashlib.sha256(safe.encode()).hexdigest()[:12]}.db"


class Spool:
    """An append-only queue of prediction batches in one SQLite file, shared by the replicas
    of one home. Thread-safe: the writer thread appends, the replay thread reads and deletes.

    The file is opened on first use (a server starts even if the directory is not writable;
    only a write that needs the spool then fails, with SpoolError)."""

    def __init__(self, path: Path, max_bytes: int) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._lease: IO[bytes] | None = None
        self.stats = SpoolStats(0, 0, 0)

    def exists(self) -> bool:
        return self.path.exists()

    def append(self, batches: Sequence[PredictionBatch]) -> None:
        """Add ``batches`` as one group, durably (fsync'd) before returning; all or nothing.
        Raises SpoolError when the spool cannot take them."""
        records = [_encode(b) for b in batches]
        size = sum(len(r[2]) + len(r[3]) + len(r[4]) + len(r[5] or b"") for r in records)
        with self._lock:
            try:
                conn = self._open()
                used = _used_bytes(conn)
                if used + size > self.max_bytes:
                    raise SpoolError(
                        self.path,
                        f"full: {used} bytes used, {size} more would pass the limit of "
                        f"{self.max_bytes} (predictions.spool_max_bytes)",
                    )
                with _tx(conn):  # one transaction: a crash mid-group leaves none of it
                    conn.executemany(
                        "INSERT INTO batches (batch_id, n_rows, meta, x, predictions, "
                        "probabilities, crc) VALUES (?, ?, ?, ?, ?, ?, ?)",
                        records,
                    )
                # counted, not re-read: count(*) would scan a large spool on every append
                st = self.stats
                self.stats = SpoolStats(
                    st.batches + len(records), st.rows + sum(r[1] for r in records), st.quarantined
                )
            except SpoolError:
                raise
            except (OSError, sqlite3.Error) as exc:
                self._close()
                raise SpoolError(self.path, _why(exc)) from exc

    def oldest(self, max_rows: int) -> SpooledGroup | None:
        """The oldest batches (at least one, then up to ``max_rows`` rows), in order, or None
        when the spool is empty. Records failing their checksum are quarantined on the way."""
        with self._lock, self._faults():
            conn = self._open_existing()
            if conn is None:
                return None
            rows = conn.execute(
                "SELECT seq, batch_id, n_rows, meta, x, predictions, probabilities, crc "
                "FROM batches ORDER BY seq LIMIT 1000"
            ).fetchall()
            if not rows:
                return None
            taken: list[PredictionBatch] = []
            bad: list[tuple[Any, ...]] = []
            last_seq, n = 0, 0
            for seq, batch_id, n_rows, meta, x, pred, prob, crc in rows:
                if taken and n + n_rows > max_rows:
                    break
                try:
                    taken.append(_decode(meta, x, pred, prob, crc))
                    n += n_rows
                except ValueError as exc:
                    bad.append((seq, batch_id, str(exc), meta, x, pred, prob, crc))
                last_seq = seq
            if bad:
                self._quarantine(conn, bad)
            return SpooledGroup(taken, last_seq, len(bad))

    def delete_through(self, last_seq: int) -> None:
        """Forget every batch up to ``last_seq`` (the store has committed them)."""
        with self._lock, self._faults():
            conn = self._open()
            with _tx(conn):
                gone = conn.execute(
                    "SELECT count(*), coalesce(sum(n_rows), 0) FROM batches WHERE seq <= ?",
                    (last_seq,),
                ).fetchone()
                conn.execute("DELETE FROM batches WHERE seq <= ?", (last_seq,))
            st = self.stats
            self.stats = SpoolStats(
                max(st.batches - gone[0], 0), max(st.rows - gone[1], 0), st.quarantined
            )

    def refresh(self) -> SpoolStats:
        """Re-read the counts (other replicas append and replay too)."""
        with self._lock, self._faults():
            conn = self._open_existing()
            if conn is not None:
                self._refresh(conn)
            return self.stats

    @contextlib.contextmanager
    def replay_lease(self) -> Iterator[bool]:
        """True while this process is the one replica replaying this file (non-blocking)."""
        lock_path = self.path.with_name(self.path.name + ".replay.lock")
        try:
            handle = lock_path.open("ab")
        except OSError:
            yield False
            return
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
            handle.close()

    def close(self) -> None:
        with self._lock:
            self._close()

    @contextlib.contextmanager
    def _faults(self) -> Iterator[None]:
        try:
            yield
        except (OSError, sqlite3.Error) as exc:
            self._close()
            raise SpoolError(self.path, _why(exc)) from exc

    def _quarantine(self, conn: sqlite3.Connection, rows: Sequence[tuple[Any, ...]]) -> None:
        now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        with _tx(conn):
            conn.executemany(
                "INSERT OR REPLACE INTO quarantine (seq, batch_id, reason, at, meta, x, "
                "predictions, probabilities, crc) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(r[0], r[1], r[2], now, *r[3:]) for r in rows],
            )
            conn.executemany("DELETE FROM batches WHERE seq = ?", [(r[0],) for r in rows])
        for r in rows:
            log.error("spool %s: batch %s moved to quarantine: %s", self.path, r[1], r[2])
        self._refresh(conn)  # rare: a damaged file

    def _open_existing(self) -> sqlite3.Connection | None:
        if self._conn is None and not self.path.exists():
            return None
        return self._open()

    def _open(self) -> sqlite3.Connection:
        if self._conn is None:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            conn = sqlite3.connect(
                self.path, timeout=30, isolation_level=None, check_same_thread=False
            )
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=FULL")  # fsync'd before we acknowledge
                conn.executescript(_SCHEMA)
            except sqlite3.Error:
                conn.close()
                raise
            self._conn = conn
            self._refresh(conn)
        return self._conn

    def _refresh(self, conn: sqlite3.Connection) -> None:
        batches, rows = conn.execute(
            "SELECT count(*), coalesce(sum(n_rows), 0) FROM batches"
        ).fetchone()
        (quarantined,) = conn.execute("SELECT count(*) FROM quarantine").fetchone()
        self.stats = SpoolStats(int(batches), int(rows), int(quarantined))

    def _close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(sqlite3.Error):
                self._conn.close()
            self._conn = None


@contextlib.contextmanager
def _tx(conn: sqlite3.Connection) -> Iterator[None]:
    """One write transaction, taken up front (replicas append to the same file)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _used_bytes(conn: sqlite3.Connection) -> int:
    """Bytes of live pages (freed pages are reused, so a drained file counts as empty)."""
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    free = conn.execute("PRAGMA freelist_count").fetchone()[0]
    size = conn.execute("PRAGMA page_size").fetchone()[0]
    return int((pages - free) * size)


def _why(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.strerror}" + (f" ({exc.filename})" if exc.filename else "")
    return f"{type(exc).__name__}: {exc}"


def _f8(values: np.ndarray) -> bytes:
    return np.ascontiguousarray(values, dtype="<f8").tobytes()


def _encode(b: PredictionBatch) -> tuple[str, int, bytes, bytes, bytes, bytes | None, int]:
    """(batch_id, n_rows, meta, x, predictions, probabilities, crc) of one batch."""
    mixed = b.x.dtype == object
    meta = orjson.dumps(
        {
            "v": _FORMAT,
            "batch_id": b.batch_id,
            "ids": b.ids,
            "client_ids": b.client_ids,
            "created_at": b.created_at.isoformat(),
            "model_name": b.model_name,
            "model_version": b.model_version,
            "endpoint": b.endpoint,
            "feature_names": list(b.feature_names),
            "latency_ms": b.latency_ms,
            "x": "json" if mixed else list(b.x.shape),
            "probabilities": None if b.probabilities is None else list(b.probabilities.shape),
            "classes": None if b.classes is None else list(b.classes),
        }
    )
    x = orjson.dumps(b.x.tolist()) if mixed else _f8(b.x)
    pred = _f8(b.predictions)
    prob = None if b.probabilities is None else _f8(b.probabilities)
    return b.batch_id, b.n_rows, meta, x, pred, prob, _crc(meta, x, pred, prob)


def _crc(meta: bytes, x: bytes, pred: bytes, prob: bytes | None) -> int:
    crc = zlib.crc32(meta)
    for part in (x, pred, prob or b""):
        crc = zlib.crc32(part, crc)
    return crc


def _decode(meta: bytes, x: bytes, pred: bytes, prob: bytes | None, crc: int) -> PredictionBatch:
    """The batch back from its record; ValueError when the record is damaged."""
    if _crc(meta, x, pred, prob) != crc:
        raise ValueError("checksum mismatch (damaged record)")
    try:
        m = orjson.loads(meta)
        if m.get("v") != _FORMAT:
            raise ValueError(f"unknown spool record format {m.get('v')!r}")
        n = len(m["ids"])
        if m["x"] == "json":
            features = np.array(orjson.loads(x), dtype=object).reshape(n, -1)
        else:
            features = np.frombuffer(x, dtype="<f8").reshape(m["x"]).astype(np.float64)
        predictions = np.frombuffer(pred, dtype="<f8").astype(np.float64)
        probabilities = (
            None
            if prob is None
            else np.frombuffer(prob, dtype="<f8").reshape(m["probabilities"]).astype(np.float64)
        )
        if len(predictions) != n or len(features) != n:
            raise ValueError("row counts disagree")
        return PredictionBatch(
            batch_id=m["batch_id"],
            ids=list(m["ids"]),
            client_ids=bool(m["client_ids"]),
            created_at=dt.datetime.fromisoformat(m["created_at"]),
            model_name=m["model_name"],
            model_version=m["model_version"],
            endpoint=m["endpoint"],
            feature_names=tuple(m["feature_names"]),
            x=features,
            predictions=predictions,
            latency_ms=float(m["latency_ms"]),
            probabilities=probabilities,
            classes=None if m["classes"] is None else tuple(m["classes"]),
        )
    except (KeyError, TypeError, orjson.JSONDecodeError) as exc:
        raise ValueError(f"unreadable record ({type(exc).__name__})") from exc


def ensure_dir(path: Path) -> None:
    """Create the spool directory now if possible (a failure is only reported later, when the
    spool is needed)."""
    with contextlib.suppress(OSError):
        # the spool holds request features: a directory we create is not for other users
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
