"""Named request examples for /docs, one per accepted body shape, built from the served
model's own features and logged input example (OpenAPI 3.1 ``examples`` on the request body).

Each example is a request the server answers 200 (tests/integration/test_seed_requests.py
posts every one), so /docs' "Try it out" works on the first click.
"""

from __future__ import annotations

from typing import Any

from mlrig.predictions.ids import id_field
from mlrig.serving.predictor import Predictor

# Tried in order as the example's id field; the first that serving.id_fields reads as an id.
_ID_NAMES = ("id", "record_id", "request_id", "key")
_NESTED_ID_NAMES = ("record_id", "request_id", "id", "key")


def example_rows(model: Predictor, n: int = 2) -> list[dict[str, Any]]:
    """``n`` records of feature values: the logged input example's first rows, else 1.0 for a
    number and "a" for a category (an unknown category is encoded as none of the known ones)."""
    frame = model.example
    features = list(model.features)
    rows: list[list[Any]] = []
    if frame is not None and all(f in getattr(frame, "columns", ()) for f in features):
        rows = frame[features].head(n).to_dict("split")["data"]
    while len(rows) < n:
        rows.append(["a" if f in model.categorical else 1.0 for f in features])
    out = []
    for row in rows:
        record: dict[str, Any] = {}
        for f, v in zip(features, row, strict=True):
            record[f] = str(v) if f in model.categorical else float(v)
        out.append(record)
    return out


def _id_name(model: Predictor, names: tuple[str, ...]) -> str | None:
    return next((n for n in names if id_field([n], model.features, model.id_fields)), None)


def predict_examples(model: Predictor) -> dict[str, dict[str, Any]]:
    """/predict: one record, a list, {records}, an id beside a nested record, columns."""
    rows = example_rows(model)
    name = _id_name(model, _ID_NAMES)
    ids = ["example-1", "example-2"]
    with_ids = [r if name is None else {name: i, **r} for r, i in zip(rows, ids, strict=True)]
    nested_name = _id_name(model, _NESTED_ID_NAMES)
    nested: dict[str, Any] = {"record": rows[0]}
    if nested_name is not None:
        nested = {nested_name: "example-1", **nested}
    columns: dict[str, Any] = {f: [r[f] for r in rows] for f in model.features}
    if name is not None:
        columns[name] = ids
    return {
        "one record": {"summary": "One record (an id is optional)", "value": with_ids[0]},
        "a list": {"summary": "A list of records", "value": with_ids},
        "records": {"summary": '{"records": [...]}', "value": {"records": with_ids}},
        "id beside a nested record": {
            "summary": "An id field beside one nested record (the zoomcamp's ride request)",
            "value": nested,
        },
        "columns": {
            "summary": "Column-oriented, as DataFrame.to_dict('list') writes it (ml-pipes)",
            "value": columns,
        },
    }


def invocation_examples(model: Predictor) -> dict[str, dict[str, Any]]:
    """/invocations (MLflow's scoring protocol): each JSON form."""
    rows = example_rows(model)
    features = list(model.features)
    data = [[r[f] for f in features] for r in rows]
    return {
        "dataframe_split": {
            "summary": "pandas split orientation",
            "value": {"dataframe_split": {"columns": features, "data": data}},
        },
        "dataframe_records": {
            "summary": "pandas records orientation",
            "value": {"dataframe_records": rows},
        },
        "instances": {"summary": "rows in feature order", "value": {"instances": data}},
        "inputs": {
            "summary": "columns",
            "value": {"inputs": {f: [r[f] for r in rows] for f in features}},
        },
        "MLflow 1.x pandas-split": {
            "summary": "MLflow 1.x: the split object itself (the French demo's curl)",
            "value": {"columns": features, "data": data},
        },
    }
