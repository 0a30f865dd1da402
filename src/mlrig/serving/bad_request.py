"""The client error every parser raises, and the words that name a bad value.

Kept apart from the parsers so that each (JSON in predictor.py, text/csv in csv_body.py) can
raise it, and so that describing a value never fails: a message is built for any JSON value,
however deeply nested or long (a value nested a few hundred levels deep once made the message
builder itself raise, turning a 422 into a 500).
"""

from __future__ import annotations

from typing import Any

import orjson

_SHOWN = 40  # characters of a bad value quoted in a message


class RequestError(Exception):
    """A client error: HTTP ``status``, a message, and where in the body it is."""

    def __init__(
        self, status: int, message: str, record: int | None = None, field: str | None = None
    ):
        super().__init__(message)
        self.status = status
        self.message = message
        self.record = record
        self.field = field

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"error": self.message}
        if self.record is not None:
            out["record"] = self.record
        if self.field is not None:
            out["field"] = self.field
        return out


def shown(value: Any) -> str:
    """``value``'s kind and a short quote of it, without walking containers (bounded cost,
    never raises): ``str "abc"``, ``null``, ``list of 3 items``."""
    if value is None:
        return "null"
    if isinstance(value, list):
        return f"list of {len(value)} items"
    if isinstance(value, dict):
        return f"object with {len(value)} keys"
    kind = type(value).__name__
    if isinstance(value, str):
        text = orjson.dumps(value).decode()  # JSON quoting shows control characters escaped
    elif isinstance(value, bool) or (isinstance(value, int) and abs(value) < 10**_SHOWN):
        text = orjson.dumps(value).decode()
    elif isinstance(value, float):
        text = repr(value)  # nan, inf, 1e+300 (JSON would print null)
    else:  # huge ints (printing one costs time, past 4,300 digits it raises) and the unknown
        text = ""
    if len(text) > _SHOWN:
        text = text[:_SHOWN] + "…"
    return f"{kind} {text}" if text else kind


def where(record: int, line: int | None) -> str:
    """``record 3`` or, for text/csv, ``record 3 (line 5)``."""
    return f"record {record}" if line is None else f"record {record} (line {line})"


def type_msg(record: int, field: str, value: Any, line: int | None = None) -> str:
    return f"{where(record, line)}: field {field!r} must be a number, got {shown(value)}"


def finite_msg(record: int, field: str, value: Any, line: int | None = None) -> str:
    return f"{where(record, line)}: field {field!r} must be a finite number, got {shown(value)}"


def category_msg(record: int, field: str, value: Any) -> str:
    return (
        f"record {record}: field {field!r} is categorical and must be a string or integer "
        f"(within ±(2**53 - 1)), "
        f"got {shown(value)}"
    )
