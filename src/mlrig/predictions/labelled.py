"""The labelled production rows of one model: logged features joined with their feedback.

A retrain learns from these. The join starts from the model's feedback (one row per
(model, prediction id): the latest value wins in the store) and fetches only the requests
that hold those ids, so its cost follows the labelled rows, not the size of the log. An id
logged twice (a client retried a request with the same id) keeps its first prediction, as the
feedback endpoint does.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson
import sqlalchemy as sa

from mlrig.predictions.faults import store_faults
from mlrig.predictions.records import parse_generated_id
from mlrig.predictions.store import (
    PredictionStore,
    _unblob,
    as_utc,
    feedback,
    prediction_ids,
    requests,
)

if TYPE_CHECKING:
    import pandas as pd

ID, LOGGED_AT, VERSION, FEEDBACK_AT = "id", "logged_at", "model_version", "feedback_at"
_CHUNK = 500  # request ids per IN (...) query


def read_labelled(
    store: PredictionStore, model_name: str, since: dt.datetime | None = None
) -> pd.DataFrame:
    """One row per labelled prediction of ``model_name`` logged at or after ``since``, oldest
    first: ``id``, ``logged_at``, ``model_version``, one column per feature, the feedback
    ``actual`` and ``feedback_at``. Empty (no columns) when there is none."""
    import pandas as pd

    lower = None if since is None else store.time_bound(since)
    with store_faults("read feedback"), store.engine.connect() as conn:
        truth = _feedback_rows(conn, model_name)
        if truth.empty:
            return pd.DataFrame()
        batches = _requests(conn, model_name, lower, truth["batch_id"].unique().tolist())
    return join_labelled(truth, batches)


def join_labelled(truth: pd.DataFrame, batches: list[dict[str, Any]]) -> pd.DataFrame:
    """Pick the labelled rows out of decoded requests (pure: tests feed it directly).

    ``truth`` has ``id, actual, feedback_at, batch_id, row``; each batch has ``batch_id,
    created_at, model_version, feature_names, features, n_rows``. Rows come oldest request
    first, each request's rows in the order they were sent. Rows whose request is not in
    ``batches`` (another model, older than the window) are left out; so is any id whose row
    number is outside its request. Duplicated ids keep their first logged row.
    """
    import pandas as pd

    parts = []
    by_batch = truth.groupby("batch_id", sort=False)
    for b in batches:
        if b["batch_id"] not in by_batch.groups:
            continue
        wanted = by_batch.get_group(b["batch_id"])
        rows = wanted["row"].to_numpy(dtype=np.int64)
        ok = (rows >= 0) & (rows < b["n_rows"])
        if not ok.any():
            continue
        order = np.argsort(rows[ok], kind="stable")  # a request's rows in the order sent
        wanted, rows = wanted[ok].iloc[order], rows[ok][order]
        names = orjson.loads(b["feature_names"])
        if isinstance(names, dict):  # categorical features: rows stored as JSON
            table = pd.DataFrame(orjson.loads(b["features"]), columns=names["columns"])
        else:
            matrix = _unblob(b["features"]).reshape(b["n_rows"], len(names))
            table = pd.DataFrame(matrix, columns=names)
        part = table.iloc[rows].reset_index(drop=True)
        part.insert(0, ID, wanted[ID].to_numpy())
        part.insert(1, LOGGED_AT, as_utc(b["created_at"]))
        part.insert(2, VERSION, str(b["model_version"]))
        part["actual"] = wanted["actual"].to_numpy(dtype=np.float64)
        part[FEEDBACK_AT] = [as_utc(t) for t in wanted[FEEDBACK_AT]]
        parts.append(part)
    if not parts:
        return pd.DataFrame()
    frame = pd.concat(parts, ignore_index=True).sort_values(LOGGED_AT, kind="stable")
    return frame.drop_duplicates(ID, keep="first").reset_index(drop=True)


def _feedback_rows(conn: sa.Connection, model_name: str) -> pd.DataFrame:
    """Every feedback row of ``model_name`` with the (batch_id, row) its id points at."""
    import pandas as pd

    query = sa.select(
        feedback.c.id,
        feedback.c.actual,
        feedback.c.created_at.label(FEEDBACK_AT),
        prediction_ids.c.batch_id,
        prediction_ids.c.row,
    ).select_from(
        feedback.outerjoin(
            prediction_ids,
            (prediction_ids.c.model_name == feedback.c.model_name)
            & (prediction_ids.c.id == feedback.c.id),
        )
    )
    query = query.where(feedback.c.model_name == model_name)
    rows = []
    for pid, actual, at, batch_id, row in conn.execute(query):
        if batch_id is None:
            parsed = parse_generated_id(pid)
            if parsed is None:
                continue
            batch_id, row = parsed
        rows.append((pid, actual, at, batch_id, row))
    return pd.DataFrame(rows, columns=[ID, "actual", FEEDBACK_AT, "batch_id", "row"])


def _requests(
    conn: sa.Connection, model_name: str, since: dt.datetime | None, batch_ids: list[str]
) -> list[dict[str, Any]]:
    cols = [
        requests.c.batch_id,
        requests.c.created_at,
        requests.c.model_version,
        requests.c.feature_names,
        requests.c.features,
        requests.c.n_rows,
    ]
    out: list[dict[str, Any]] = []
    for start in range(0, len(batch_ids), _CHUNK):
        query = sa.select(*cols).where(
            requests.c.model_name == model_name,
            requests.c.batch_id.in_(batch_ids[start : start + _CHUNK]),
        )
        if since is not None:
            query = query.where(requests.c.created_at >= since)
        out += [dict(r) for r in conn.execute(query).mappings()]
    return out
