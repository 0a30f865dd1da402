"""The prediction + feedback store: one SQLAlchemy schema for SQLite, PostgreSQL, MySQL/MariaDB.

One ``prediction_requests`` row per answered request (see records.py); client-chosen ids get
a ``prediction_ids`` row so feedback can find them. Writes come batched from writer.py and
go through the DB-API's executemany: SQLAlchemy's per-row parameter processing cost more than
the commit itself. A retried client id keeps its first prediction (on conflict do nothing),
so one duplicate never fails a shared commit.

Ids are one namespace per model: ``prediction_ids`` and ``feedback`` are keyed by
(model_name, id), so two models (or two clients of two models) may both use id "42" and each
gets its own prediction and its own ground truth. Feedback for an id that already has some
replaces it (the latest value wins: a corrected label). The schema is created and upgraded
by Alembic revisions when the store is opened (migrate.py); a store an older mlrig created
(ids keyed by id alone) is upgraded in place, never dropped.

Every database fault leaves here as StoreUnavailableError, described without the ids or
features the statement carried (faults.py); anything else is a bug and propagates as itself.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import threading
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson
import sqlalchemy as sa
from sqlalchemy.dialects.mysql import insert as mysql_insert
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from mlrig.errors import ConfigError, StoreUnavailableError
from mlrig.predictions import migrate
from mlrig.predictions.faults import fault, store_faults
from mlrig.predictions.records import PredictionBatch, generated_ids, parse_generated_id
from mlrig.predictions.schema import (  # re-exported: the store's users import them from here
    feedback,
    locks,
    loop_passes,
    metadata,
    monitoring_results,
    prediction_ids,
    requests,
)

__all__ = [
    "PredictionStore",
    "as_utc",
    "feedback",
    "locks",
    "loop_passes",
    "metadata",
    "monitoring_results",
    "prediction_ids",
    "requests",
]

if TYPE_CHECKING:
    import pandas as pd


class PredictionStore:
    """Durable log of answered predictions and their ground truth."""

    def __init__(self, url: str) -> None:
        self.url = url
        if url.startswith("sqlite:///"):
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        try:
            self.engine = sa.create_engine(url, pool_pre_ping=not url.startswith("sqlite"))
        except Exception as exc:
            raise StoreUnavailableError(f"prediction store {_safe(url)}: {exc}") from exc
        dialect = self.engine.dialect
        if dialect.name not in migrate.SUPPORTED:
            raise ConfigError(
                f"prediction store {_safe(url)}: backend {dialect.name!r} is not supported "
                f"(expected sqlite, postgresql or mysql/mariadb)"
            )
        self.sqlite = dialect.name == "sqlite"
        self.mysql = dialect.name in ("mysql", "mariadb")
        if self.sqlite:
            sa.event.listen(self.engine, "connect", _sqlite_pragmas)
        self._insert_requests = _insert_sql(requests, dialect, ("batch_id",))
        self._insert_ids = _insert_sql(prediction_ids, dialect, ("model_name", "id"))
        self._names_json: dict[tuple[tuple[str, ...], bool], str] = {}
        self._classes: dict[tuple[str, ...], str] = {}
        self._writing = threading.local()  # SQLite: each writing thread's own held connection
        self._held: list[Any] = []
        self._held_lock = threading.Lock()

    def create_schema(self) -> None:
        """Create the schema or upgrade it to the newest revision; see ``upgrade``."""
        self.upgrade()

    def upgrade(self) -> tuple[str | None, str]:
        """Create the schema or upgrade it to the newest revision (migrate.py; rows are never
        dropped); returns (revision before, revision after). Under a lock, so processes
        opening the store together (server workers) take turns instead of failing on each
        other's tables. Raises StoreUnavailableError on a store fault."""
        try:
            with self.engine.connect() as conn, migrate.schema_lock(conn):
                done = migrate.upgrade(conn)
                conn.commit()
                return done
        except sa.exc.SQLAlchemyError as exc:
            raise fault(f"open {_safe(self.url)}", exc) from exc

    def revision(self) -> str | None:
        """The schema revision the store is at (None: empty, or created before versioning)."""
        with store_faults("read the schema revision"), self.engine.connect() as conn:
            return migrate.current(conn)

    def insert_batches(self, batches: Sequence[PredictionBatch]) -> None:
        """Insert ``batches`` in one transaction; committed (durable) when this returns.
        Raises StoreUnavailableError (nothing of the batch stored) on a store fault."""
        if not batches:
            return
        sqlite, naive = self.sqlite, self.mysql
        rows: list[tuple[Any, ...]] = []
        id_rows: list[tuple[str, str, str, int]] = []
        for b in batches:
            mixed = b.x.dtype == object
            names = self._names_json.get((b.feature_names, mixed))
            if names is None:
                value: Any = (
                    {"columns": b.feature_names, "encoding": "json"} if mixed else b.feature_names
                )
                names = self._names_json[(b.feature_names, mixed)] = orjson.dumps(value).decode()
            rows.append(
                (
                    b.batch_id,
                    _sqlite_stamp(b.created_at)
                    if sqlite
                    else (_naive_utc(b.created_at) if naive else b.created_at),
                    b.model_name,
                    b.model_version,
                    b.endpoint,
                    b.n_rows,
                    names,
                    orjson.dumps(b.x.tolist()) if mixed else _blob(b.x),
                    _blob(b.predictions),
                    orjson.dumps(b.ids).decode() if b.client_ids else None,
                    b.latency_ms,
                    None if b.probabilities is None else _blob(b.probabilities),
                    None if b.classes is None else self._classes_json(b.classes),
                )
            )
            if b.client_ids:
                id_rows.extend((b.model_name, pid, b.batch_id, i) for i, pid in enumerate(b.ids))
        if sqlite:
            self._insert_sqlite(rows, id_rows)
            return
        # the driver's error would quote every id and feature blob of the commit
        with store_faults("write predictions"), self.engine.begin() as conn:
            conn.exec_driver_sql(self._insert_requests, rows)
            if id_rows:
                conn.exec_driver_sql(self._insert_ids, id_rows)

    def _insert_sqlite(self, rows: list[tuple[Any, ...]], id_rows: list[Any]) -> None:
        """The same transaction on a DB-API connection this thread keeps checked out: on a
        2-vCPU VM SQLAlchemy's checkout, transaction and reset-on-return cost ≈300 µs a
        commit next to SQLite's own ≈450 µs (fsync included). Any fault drops the connection
        (the next write opens a new one) and leaves as StoreUnavailableError."""
        conn = getattr(self._writing, "conn", None)
        try:
            if conn is None:
                conn = self.engine.raw_connection()  # the connect event's pragmas apply
                self._writing.conn = conn
                with self._held_lock:
                    self._held.append(conn)
            cursor = conn.cursor()
            try:
                cursor.executemany(self._insert_requests, rows)
                if id_rows:
                    cursor.executemany(self._insert_ids, id_rows)
            finally:
                cursor.close()
            conn.commit()
        except (sa.exc.SQLAlchemyError, self.engine.dialect.loaded_dbapi.Error) as exc:
            self._drop_writing_connection()
            raise fault("write predictions", exc) from exc

    def _drop_writing_connection(self) -> None:
        conn = getattr(self._writing, "conn", None)
        self._writing.conn = None
        if conn is None:
            return
        with self._held_lock:
            if conn in self._held:
                self._held.remove(conn)
        with contextlib.suppress(Exception):  # thrown away next: nothing left to undo
            conn.rollback()
        conn.invalidate()

    def _classes_json(self, classes: tuple[str, ...]) -> str:
        text = self._classes.get(classes)
        if text is None:
            text = self._classes[classes] = orjson.dumps(list(classes)).decode()
        return text

    def missing_ids(self, model_name: str, ids: Iterable[str]) -> list[str]:
        """The prediction ids among ``ids`` that ``model_name`` never answered, in the order
        given (each once). Raises StoreUnavailableError on a store fault."""
        wanted = list(dict.fromkeys(ids))
        found: set[str] = set()
        sizes: dict[str, int] = {}
        with store_faults("look up prediction ids"), self.engine.connect() as conn:
            for chunk in _chunks(wanted):
                found.update(
                    conn.scalars(
                        sa.select(prediction_ids.c.id).where(
                            prediction_ids.c.model_name == model_name,
                            prediction_ids.c.id.in_(chunk),
                        )
                    )
                )
            generated = {i: parse_generated_id(i) for i in wanted if i not in found}
            batch_ids = list({g[0] for g in generated.values() if g is not None})
            for chunk in _chunks(batch_ids):
                query = sa.select(requests.c.batch_id, requests.c.n_rows).where(
                    requests.c.model_name == model_name, requests.c.batch_id.in_(chunk)
                )
                for batch_id, n_rows in conn.execute(query):
                    sizes[batch_id] = int(n_rows)
        for pid, parsed in generated.items():
            if parsed is not None and parsed[1] < sizes.get(parsed[0], 0):
                found.add(pid)
        return [i for i in wanted if i not in found]

    def add_feedback(self, model_name: str, pairs: Sequence[tuple[str, float]]) -> None:
        """Store ground truth for ``model_name``'s prediction ids in one transaction. An id
        that already has feedback gets the new value (corrections win); within ``pairs`` the
        last value of an id wins. Raises StoreUnavailableError on a store fault."""
        latest = dict(pairs)
        if not latest:
            return
        now = dt.datetime.now(dt.UTC)
        rows = [
            {"model_name": model_name, "id": i, "actual": a, "created_at": now}
            for i, a in latest.items()
        ]
        upsert: sa.Insert
        if self.mysql:
            mine = mysql_insert(feedback)
            upsert = mine.on_duplicate_key_update(
                actual=mine.inserted.actual, created_at=mine.inserted.created_at
            )
        else:
            insert = (sqlite_insert if self.sqlite else pg_insert)(feedback)
            upsert = insert.on_conflict_do_update(
                index_elements=[feedback.c.model_name, feedback.c.id],
                set_={"actual": insert.excluded.actual, "created_at": insert.excluded.created_at},
            )
        with store_faults("store feedback"), self.engine.begin() as conn:
            conn.execute(upsert, rows)

    def count(self) -> int:
        """Logged predictions (rows, not requests)."""
        query = sa.select(sa.func.coalesce(sa.func.sum(requests.c.n_rows), 0))
        with store_faults("count predictions"), self.engine.connect() as conn:
            return int(conn.scalar(query) or 0)

    def feedback_count(self, model_name: str | None = None) -> int:
        """Predictions with ground truth (of ``model_name``, or of every model)."""
        query = sa.select(sa.func.count()).select_from(feedback)
        if model_name is not None:
            query = query.where(feedback.c.model_name == model_name)
        with store_faults("count feedback"), self.engine.connect() as conn:
            return int(conn.scalar(query) or 0)

    def time_bound(self, when: dt.datetime) -> dt.datetime:
        """``when`` as the store compares it with ``created_at``: SQLite and MySQL keep naive
        UTC and their drivers would write an aware time's wall clock, off by its offset."""
        if (self.sqlite or self.mysql) and when.tzinfo is not None:
            return _naive_utc(when)
        return when

    def save_monitoring(
        self, model_name: str, verdict: str, result: str, report_html: str | None
    ) -> int:
        """Append one monitoring result (JSON text) and its HTML report; returns its id."""
        with store_faults("save a monitoring result"), self.engine.begin() as conn:
            done = conn.execute(
                monitoring_results.insert().values(
                    computed_at=dt.datetime.now(dt.UTC),
                    model_name=model_name,
                    verdict=verdict,
                    result=result,
                    report_html=report_html,
                )
            )
            key = done.inserted_primary_key
            assert key is not None
            return int(key[0])

    def latest_monitoring(self, model_name: str) -> tuple[int, str] | None:
        """(id, JSON result) of the newest monitoring result for ``model_name``, if any."""
        query = (
            sa.select(monitoring_results.c.id, monitoring_results.c.result)
            .where(monitoring_results.c.model_name == model_name)
            .order_by(monitoring_results.c.id.desc())
            .limit(1)
        )
        with store_faults("read monitoring results"), self.engine.connect() as conn:
            row = conn.execute(query).first()
        return None if row is None else (int(row[0]), str(row[1]))

    def monitoring_report(self, result_id: int) -> str | None:
        with store_faults("read a monitoring report"), self.engine.connect() as conn:
            return conn.scalar(
                sa.select(monitoring_results.c.report_html).where(
                    monitoring_results.c.id == result_id
                )
            )

    def read_frame(
        self, since: dt.datetime | None = None, model_name: str | None = None
    ) -> pd.DataFrame:
        """One row per prediction (of ``model_name``, or of every model), oldest first: id,
        request columns, one column per feature, ``prediction``, and ``actual``/``feedback_at``
        (NaN when no feedback yet), joined by (model_name, id). Every answered request's rows are
        here: a client id reused by a later request (e.g. a retry after a 503 whose rows were
        committed late) appears with each, and its feedback joins the first. Raises StoreUnavailableError
        on a store fault."""
        import pandas as pd

        query = sa.select(requests).order_by(requests.c.created_at)
        if since is not None:
            query = query.where(requests.c.created_at >= self.time_bound(since))
        truth_query = sa.select(
            feedback.c.model_name,
            feedback.c.id,
            feedback.c.actual,
            feedback.c.created_at.label("feedback_at"),
        )
        if model_name is not None:
            query = query.where(requests.c.model_name == model_name)
            truth_query = truth_query.where(feedback.c.model_name == model_name)
        with store_faults("read the prediction log"), self.engine.connect() as conn:
            batches = conn.execute(query).mappings().all()
            truth = pd.DataFrame(
                conn.execute(truth_query).all(),
                columns=["model_name", "id", "actual", "feedback_at"],
            )
        if not batches:
            return pd.DataFrame()
        parts = []
        for b in batches:
            n = int(b["n_rows"])
            names = orjson.loads(b["feature_names"])
            if isinstance(names, dict):  # categorical features: rows stored as JSON
                part = pd.DataFrame(orjson.loads(b["features"]), columns=names["columns"])
            else:
                part = pd.DataFrame(_unblob(b["features"]).reshape(n, len(names)), columns=names)
            part.insert(
                0, "id", orjson.loads(b["ids"]) if b["ids"] else generated_ids(b["batch_id"], n)
            )
            for col in (
                "batch_id",
                "created_at",
                "model_name",
                "model_version",
                "endpoint",
                "latency_ms",
            ):
                part.insert(len(part.columns), col, b[col])
            part["prediction"] = _unblob(b["predictions"])
            if b["probabilities"] is not None:
                classes = orjson.loads(b["classes"])
                proba = _unblob(b["probabilities"]).reshape(n, len(classes))
                for j, label in enumerate(classes):
                    part[f"proba_{label}"] = proba[:, j]
            parts.append(part)
        frame = pd.concat(parts, ignore_index=True)
        return frame.merge(truth, on=["model_name", "id"], how="left")

    def close(self) -> None:
        held: list[Any] = []
        if "_held" in self.__dict__:  # a subclass may open its engine without our __init__
            with self._held_lock:
                held, self._held = self._held, []
        for conn in held:
            conn.close()  # back to the pool, which dispose() then closes
        self.engine.dispose()


def _chunks(values: list[str], size: int = 500) -> Iterator[list[str]]:
    """Slices of ``values`` small enough for one IN (...) on every backend."""
    for start in range(0, len(values), size):
        yield values[start : start + size]


def _blob(values: np.ndarray) -> bytes:
    return np.ascontiguousarray(values, dtype="<f8").tobytes()


def _unblob(data: bytes) -> np.ndarray:
    return np.frombuffer(data, dtype="<f8")


def _insert_sql(table: sa.Table, dialect: sa.Dialect, key: tuple[str, ...]) -> str:
    """An insert that keeps the existing row when ``key`` is taken, in the driver's own
    parameter style: ON CONFLICT DO NOTHING, or on MySQL a no-op ON DUPLICATE KEY UPDATE
    (INSERT IGNORE would also turn truncations and bad values into warnings)."""
    quote = dialect.identifier_preparer.quote_identifier
    mark = "?" if dialect.paramstyle == "qmark" else "%s"
    cols = ", ".join(quote(c.name) for c in table.columns)
    marks = ", ".join([mark] * len(table.columns))
    sql = f"INSERT INTO {quote(table.name)} ({cols}) VALUES ({marks})"
    if dialect.name in ("mysql", "mariadb"):
        return f"{sql} ON DUPLICATE KEY UPDATE {quote(key[0])} = {quote(key[0])}"
    return f"{sql} ON CONFLICT ({', '.join(quote(k) for k in key)}) DO NOTHING"


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")  # readers never block the writer
    cur.execute("PRAGMA synchronous=FULL")  # a commit is on disk before we acknowledge
    cur.execute("PRAGMA busy_timeout=10000")  # several workers share one file
    cur.close()


def as_utc(when: dt.datetime) -> dt.datetime:
    """A timestamp read back from the store, aware and in UTC (SQLite returns it naive)."""
    return when.replace(tzinfo=dt.UTC) if when.tzinfo is None else when.astimezone(dt.UTC)


def _naive_utc(when: dt.datetime) -> dt.datetime:
    return when.astimezone(dt.UTC).replace(tzinfo=None) if when.tzinfo else when


def _sqlite_stamp(when: dt.datetime) -> str:
    """The text SQLAlchemy's SQLite DateTime type stores (naive UTC), so reads round-trip."""
    naive = when.astimezone(dt.UTC).replace(tzinfo=None) if when.tzinfo else when
    return naive.isoformat(sep=" ", timespec="microseconds")


def _safe(url: str) -> str:
    return sa.engine.make_url(url).render_as_string(hide_password=True)


def open_store(url: str) -> PredictionStore:
    """The store at ``url`` with its schema up to date; StoreUnavailableError (the URL without
    its password) when the database does not answer."""
    store = PredictionStore(url)
    try:
        store.create_schema()
    except BaseException:
        store.close()
        raise
    return store
