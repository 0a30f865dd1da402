"""The prediction + feedback store: one SQLAlchemy schema for SQLite and PostgreSQL.

Writes are batched by the caller (see writer.py); a retried request id keeps its first
prediction (insert … on conflict do nothing) so one duplicate never fails a shared commit.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from mlrig.errors import StoreUnavailableError

if TYPE_CHECKING:
    import pandas as pd

metadata = sa.MetaData()

predictions = sa.Table(
    "predictions",
    metadata,
    sa.Column("id", sa.String(128), primary_key=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, index=True),
    sa.Column("model_name", sa.String(256), nullable=False),
    sa.Column("model_version", sa.String(32), nullable=False),
    sa.Column("endpoint", sa.String(32), nullable=False),
    sa.Column("features", sa.Text, nullable=False),  # JSON object: feature -> value
    sa.Column("prediction", sa.Float, nullable=False),
    sa.Column("latency_ms", sa.Float, nullable=False),
)

feedback = sa.Table(
    "feedback",
    metadata,
    sa.Column("id", sa.String(128), sa.ForeignKey("predictions.id"), primary_key=True),
    sa.Column("actual", sa.Float, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)


@dataclass(frozen=True)
class PredictionRow:
    id: str
    created_at: dt.datetime
    model_name: str
    model_version: str
    endpoint: str
    features: str
    prediction: float
    latency_ms: float


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
        if self.engine.dialect.name == "sqlite":
            sa.event.listen(self.engine, "connect", _sqlite_pragmas)
        self._insert_sql = self._dialect_insert_sql()

    def create_schema(self) -> None:
        try:
            metadata.create_all(self.engine)
        except sa.exc.SQLAlchemyError as exc:
            raise StoreUnavailableError(f"prediction store {_safe(self.url)}: {exc}") from exc

    def insert_predictions(self, rows: Sequence[PredictionRow]) -> None:
        """Insert ``rows`` in one transaction; committed (durable) when this returns."""
        if not rows:
            return
        # The DB-API's executemany on plain tuples: SQLAlchemy's per-row parameter processing
        # cost more than the commit itself for 1,000-row batches.
        sqlite = self.engine.dialect.name == "sqlite"
        stamps: dict[dt.datetime, Any] = {}
        params = []
        for r in rows:
            when = stamps.get(r.created_at)
            if when is None:
                when = stamps[r.created_at] = (
                    _sqlite_stamp(r.created_at) if sqlite else r.created_at
                )
            params.append(
                (
                    r.id,
                    when,
                    r.model_name,
                    r.model_version,
                    r.endpoint,
                    r.features,
                    r.prediction,
                    r.latency_ms,
                )
            )
        with self.engine.begin() as conn:
            conn.exec_driver_sql(self._insert_sql, params)

    def missing_ids(self, ids: Iterable[str]) -> list[str]:
        wanted = list(dict.fromkeys(ids))
        with self.engine.connect() as conn:
            found = set(
                conn.scalars(sa.select(predictions.c.id).where(predictions.c.id.in_(wanted)))
            )
        return [i for i in wanted if i not in found]

    def add_feedback(self, pairs: Sequence[tuple[str, float]]) -> None:
        """Store ground truth for known prediction ids (the latest value wins)."""
        now = dt.datetime.now(dt.UTC)
        with self.engine.begin() as conn:
            conn.execute(feedback.delete().where(feedback.c.id.in_([p[0] for p in pairs])))
            conn.execute(
                feedback.insert(), [{"id": i, "actual": a, "created_at": now} for i, a in pairs]
            )

    def count(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.scalar(sa.select(sa.func.count()).select_from(predictions)) or 0)

    def ids(self) -> set[str]:
        with self.engine.connect() as conn:
            return set(conn.scalars(sa.select(predictions.c.id)))

    def read_frame(self, since: dt.datetime | None = None) -> pd.DataFrame:
        """Predictions joined to feedback (``actual`` NaN when none), features as columns."""
        import orjson
        import pandas as pd

        query = (
            sa.select(predictions, feedback.c.actual, feedback.c.created_at.label("feedback_at"))
            .select_from(predictions.outerjoin(feedback))
            .order_by(predictions.c.created_at)
        )
        if since is not None:
            query = query.where(predictions.c.created_at >= since)
        with self.engine.connect() as conn:
            frame = pd.DataFrame(conn.execute(query).mappings().all())
        if frame.empty:
            return frame
        feats = pd.DataFrame([orjson.loads(f) for f in frame.pop("features")], index=frame.index)
        return pd.concat([frame, feats], axis=1)

    def close(self) -> None:
        self.engine.dispose()

    def _dialect_insert_sql(self) -> str:
        """INSERT … ON CONFLICT (id) DO NOTHING in the driver's own parameter style."""
        mark = "?" if self.engine.dialect.paramstyle == "qmark" else "%s"
        cols = ", ".join(c.name for c in predictions.columns)
        marks = ", ".join([mark] * len(predictions.columns))
        return f"INSERT INTO predictions ({cols}) VALUES ({marks}) ON CONFLICT (id) DO NOTHING"


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")  # readers never block the writer
    cur.execute("PRAGMA synchronous=FULL")  # a commit is on disk before we acknowledge
    cur.execute("PRAGMA busy_timeout=10000")  # several workers share one file
    cur.close()


def _sqlite_stamp(when: dt.datetime) -> str:
    """The text SQLAlchemy's SQLite DateTime type stores (naive UTC), so reads round-trip."""
    naive = when.astimezone(dt.UTC).replace(tzinfo=None) if when.tzinfo else when
    return naive.isoformat(sep=" ", timespec="microseconds")


def _safe(url: str) -> str:
    return sa.engine.make_url(url).render_as_string(hide_password=True)
