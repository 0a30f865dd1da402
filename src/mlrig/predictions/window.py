"""Read a monitoring window from the prediction log in bulk.

A window is the predictions of one model since a time, or its last N predictions, split by
the version that answered them. Rows come back as NumPy arrays: the float64 blobs of all
requests are joined and decoded once (no per-prediction Python), and the SQL is raw DB-API so
no per-row type processing runs (SQLAlchemy parses every SQLite timestamp it returns).
Feedback is joined by prediction id, vectorised.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson

from mlrig.errors import StoreUnavailableError
from mlrig.predictions.store import PredictionStore, _sqlite_stamp

if TYPE_CHECKING:
    import pandas as pd

_FETCH = 50_000


@dataclass(frozen=True)
class VersionRows:
    """Every logged row of one model version in the window, oldest first."""

    model_name: str
    version: str
    features: tuple[str, ...]
    categorical: bool  # x is an object matrix (JSON-logged rows) rather than float64
    x: np.ndarray  # (n, len(features))
    predictions: np.ndarray  # (n,) float64 (class labels as numbers for classifiers)
    probabilities: np.ndarray | None  # (n, len(classes)) for classifiers
    classes: tuple[str, ...] | None
    actual: np.ndarray  # (n,) float64, NaN where no feedback arrived

    @property
    def n_rows(self) -> int:
        return len(self.predictions)

    @property
    def labelled(self) -> np.ndarray:
        return ~np.isnan(self.actual)


@dataclass(frozen=True)
class Window:
    model_name: str
    since: dt.datetime | None
    last: int | None
    first_at: dt.datetime | None
    last_at: dt.datetime | None
    parts: tuple[VersionRows, ...]  # one per version, the most recent version last

    @property
    def n_rows(self) -> int:
        return sum(p.n_rows for p in self.parts)


def read_window(
    store: PredictionStore,
    model_name: str,
    since: dt.datetime | None = None,
    last: int | None = None,
) -> Window:
    """The predictions of ``model_name`` logged at or after ``since`` and, when ``last`` is
    given, only the newest ``last`` of them. Raises StoreUnavailableError on a store fault."""
    try:
        with store.engine.connect() as sa_conn:
            conn = sa_conn.connection.dbapi_connection
            assert conn is not None
            return _read(store, conn, model_name, since, last)
    except StoreUnavailableError:
        raise
    except Exception as exc:
        raise StoreUnavailableError(f"prediction store: cannot read the window ({exc})") from exc


def _read(
    store: PredictionStore,
    conn: Any,
    model_name: str,
    since: dt.datetime | None,
    last: int | None,
) -> Window:
    sqlite = store.engine.dialect.name == "sqlite"
    mark = "?" if sqlite else "%s"
    lower = None if since is None else (_sqlite_stamp(since) if sqlite else since)
    cur = conn.cursor()
    skip = 0
    if last is not None:  # the newest requests that hold `last` rows: find the oldest one
        where, params = _where(mark, model_name, lower)
        cur.execute(
            f"SELECT created_at, n_rows FROM prediction_requests {where} "
            "ORDER BY created_at DESC, batch_id DESC",
            params,
        )
        total, cutoff = 0, None
        while total < last:
            chunk = cur.fetchmany(_FETCH)
            if not chunk:
                break
            sizes = np.fromiter((r[1] for r in chunk), dtype=np.int64, count=len(chunk))
            running = total + np.cumsum(sizes)
            hit = int(np.searchsorted(running, last))
            if hit < len(chunk):
                cutoff, skip = chunk[hit][0], int(running[hit] - last)
                total = last
            else:
                total = int(running[-1])
        if cutoff is not None:
            lower = cutoff
    where, params = _where(mark, model_name, lower)
    cur.execute(
        "SELECT model_version, feature_names, classes, n_rows, batch_id, features, "
        f"predictions, probabilities FROM prediction_requests {where} "
        "ORDER BY created_at, batch_id",
        params,
    )
    rows = cur.fetchall()
    span = None
    if rows:
        cur.execute(
            f"SELECT MIN(created_at), MAX(created_at) FROM prediction_requests {where}", params
        )
        span = cur.fetchone()
    feedback = _feedback(cur, mark, lower) if rows else None
    cur.close()
    if skip and rows:  # the oldest request straddles the cut: drop its oldest rows
        rows[0] = _drop_first(rows[0], skip)
    parts = [_decode(model_name, group, feedback) for group in _groups(rows)]
    first_at, last_at = (_as_time(span[0]), _as_time(span[1])) if span else (None, None)
    return Window(model_name, since, last, first_at, last_at, tuple(parts))


def _where(mark: str, model_name: str, lower: Any) -> tuple[str, tuple[Any, ...]]:
    if lower is None:
        return f"WHERE model_name = {mark}", (model_name,)
    return f"WHERE model_name = {mark} AND created_at >= {mark}", (model_name, lower)


def _groups(rows: list[tuple[Any, ...]]) -> list[list[tuple[Any, ...]]]:
    """Rows split by (version, feature layout, classes), in order of each group's first row."""
    keys = [(r[0], r[1], r[2]) for r in rows]
    if not keys or keys.count(keys[0]) == len(keys):
        return [rows] if rows else []
    out: dict[tuple[Any, ...], list[tuple[Any, ...]]] = {}
    for key, row in zip(keys, rows, strict=True):
        out.setdefault(key, []).append(row)
    return list(out.values())


def _decode(
    model_name: str, rows: list[tuple[Any, ...]], feedback: pd.DataFrame | None
) -> VersionRows:
    version, names_json, classes_json = rows[0][0], rows[0][1], rows[0][2]
    names = orjson.loads(names_json)
    cols = list(zip(*rows, strict=True))
    n_rows = np.fromiter(cols[3], dtype=np.int64, count=len(rows))
    n = int(n_rows.sum())
    if isinstance(names, dict):  # categorical models log JSON rows
        features = tuple(names["columns"])
        matrix = [r for blob in cols[5] for r in orjson.loads(blob)]
        x = np.array(matrix, dtype=object).reshape(n, len(features))
        categorical = True
    else:
        features = tuple(names)
        x = _floats(cols[5]).reshape(n, len(features))
        categorical = False
    predictions = _floats(cols[6])
    classes = tuple(str(c) for c in orjson.loads(classes_json)) if classes_json else None
    probabilities = None
    if classes is not None and all(p is not None for p in cols[7]):
        probabilities = _floats(cols[7]).reshape(n, len(classes))
    actual = _join_feedback(list(cols[4]), n_rows, feedback)
    return VersionRows(
        model_name,
        str(version),
        features,
        categorical,
        x,
        predictions,
        probabilities,
        classes,
        actual,
    )


def _floats(blobs: tuple[Any, ...]) -> np.ndarray:
    return np.frombuffer(b"".join(bytes(b) for b in blobs), dtype="<f8")


def _drop_first(row: tuple[Any, ...], k: int) -> tuple[Any, ...]:
    """A request row without its first ``k`` predictions (their ids keep their row numbers
    only for client ids; generated ids are re-based by the caller's feedback join)."""
    version, names_json, classes_json, n, batch_id, feats, preds, proba = row
    keep = n - k
    names = orjson.loads(names_json)
    if isinstance(names, dict):
        feats = orjson.dumps(orjson.loads(feats)[k:])
    else:
        feats = np.frombuffer(bytes(feats), "<f8").reshape(n, -1)[k:].tobytes()
    preds = np.frombuffer(bytes(preds), "<f8")[k:].tobytes()
    if proba is not None:
        proba = np.frombuffer(bytes(proba), "<f8").reshape(n, -1)[k:].tobytes()
    return (version, names_json, classes_json, keep, (batch_id, k), feats, preds, proba)


def _feedback(cur: Any, mark: str, lower: Any) -> pd.DataFrame:
    """(batch_id, row, actual) of every feedback given since ``lower`` (feedback always comes
    after its prediction, so older feedback cannot belong to the window)."""
    import pandas as pd

    sql = (
        "SELECT f.id, f.actual, p.batch_id, p.row FROM feedback f "
        "LEFT JOIN prediction_ids p ON p.id = f.id"
    )
    if lower is not None:
        cur.execute(f"{sql} WHERE f.created_at >= {mark}", (lower,))
    else:
        cur.execute(sql)
    frame = pd.DataFrame(cur.fetchall(), columns=["id", "actual", "batch_id", "row"])
    if frame.empty:
        return frame
    generated = frame["batch_id"].isna()
    if generated.any():
        parsed = frame.loc[generated, "id"].str.extract(r"^([0-9a-f]{32})-(\d+)$")
        frame.loc[generated, "batch_id"] = parsed[0]
        frame.loc[generated, "row"] = pd.to_numeric(parsed[1])
    return frame.dropna(subset=["batch_id", "row"])


def _join_feedback(
    batch_ids: list[Any], n_rows: np.ndarray, feedback: pd.DataFrame | None
) -> np.ndarray:
    import pandas as pd

    n = int(n_rows.sum())
    actual = np.full(n, np.nan)
    if feedback is None or feedback.empty:
        return actual
    shift = np.zeros(len(batch_ids), dtype=np.int64)
    if batch_ids and isinstance(batch_ids[0], tuple):  # the straddling request, trimmed
        batch_ids[0], shift[0] = batch_ids[0]
    offsets = np.concatenate([[0], np.cumsum(n_rows)[:-1]])
    where = pd.Index(batch_ids).get_indexer(feedback["batch_id"])
    rows = feedback["row"].to_numpy(dtype=np.int64) - shift[np.maximum(where, 0)]
    ok = (where >= 0) & (rows >= 0) & (rows < n_rows[np.maximum(where, 0)])
    actual[offsets[where[ok]] + rows[ok]] = feedback["actual"].to_numpy(dtype=np.float64)[ok]
    return actual


def _as_time(value: Any) -> dt.datetime | None:
    if value is None:
        return None
    if isinstance(value, str):  # SQLite: naive UTC text
        value = dt.datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
