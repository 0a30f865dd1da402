"""Reading a JSON request body: the bounded JSON reader, the shape rules shared by both
routes, and the client-id rule applied at the edge (see mlrig.predictions.ids).

Pure functions of the parsed value; every refusal is a RequestError naming what is wrong.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson

from mlrig.predictions.ids import BadClientId, check_client_id
from mlrig.predictions.records import parse_generated_id
from mlrig.serving.bad_request import RequestError

FORMAT_HELP = (
    'unrecognised body: send {"dataframe_split": {"columns": [...], "data": [[...]]}}, '
    '{"dataframe_records": [{...}]}, {"instances": [...]} or {"inputs": ...} (MLflow scoring '
    "protocol), or text/csv with a header row"
)


def no_other_keys(data: dict[str, Any], allowed: set[str], what: str) -> None:
    """Unknown keys are refused, not ignored: MLflow's ``params``, say, would change nothing."""
    extra = [k for k in data if k not in allowed]
    if extra:
        raise RequestError(
            400, f"{what} takes only {sorted(allowed)}: unknown key {extra[0]!r}", None, extra[0]
        )


def loads(body: bytes) -> Any:
    if not body.strip():
        raise RequestError(400, "empty request body: expected JSON")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise RequestError(400, f"body is not valid JSON ({exc})") from exc


def may_hold_bool(body: bytes) -> bool:
    return b"true" in body or b"false" in body


def numeric(rows: list[Any], width: int) -> np.ndarray | None:
    """``rows`` as float64 when every value is a JSON number and every row has ``width``
    values; None otherwise (the caller then walks the values to name the bad one)."""
    try:
        arr = np.array(rows)
    except (ValueError, TypeError):
        return None
    if arr.ndim != 2 or arr.shape[1] != width or arr.dtype.kind not in "fiu":
        return None
    return arr.astype(np.float64, copy=False)


def client_id(value: Any, i: int, field: str = "id") -> str:
    """The client's id for record ``i`` (sent as ``field``), refused (422) if the store could
    not hold it or if it has the form of a generated id (feedback for it would join the wrong
    prediction)."""
    try:
        rid = check_client_id(value)
    except BadClientId as exc:
        raise RequestError(422, f"record {i}: {field!r} {exc}", i, field) from None
    if parse_generated_id(rid) is not None:
        raise RequestError(
            422,
            f"record {i}: {field!r} {rid!r} has the form of a generated id "
            "(<32 hex digits>-<row>), which is reserved",
            i,
            field,
        )
    return rid
