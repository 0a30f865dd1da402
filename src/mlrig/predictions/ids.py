"""The one rule for ids a client chooses (predictions and feedback alike).

Checked at the edge so that a bad id is a 422 naming its record, never a store fault: on
PostgreSQL an id over the column's 128 characters or with a NUL byte fails the whole group
commit it shares with other requests. Ids live in one namespace per model (see store.py).
"""

from __future__ import annotations

MAX_ID_CHARS = 128  # prediction_ids.id and feedback.id are VARCHAR(128)


def check_client_id(value: object) -> str:
    """``value`` as the id string the store keys on; a JSON integer becomes its decimal text.

    Raises ValueError saying what is wrong (not the id itself: it may be huge or binary).
    """
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise ValueError(f"must be a string or integer, not {_kind(value)}")
    text = str(value)
    if not text:
        raise ValueError("must not be empty")
    if len(text) > MAX_ID_CHARS:
        raise ValueError(f"has {len(text)} characters; at most {MAX_ID_CHARS} are allowed")
    if "\x00" in text:
        raise ValueError("contains a NUL character (\\u0000)")
    return text


def _kind(value: object) -> str:
    return {
        type(None): "null",
        bool: "a boolean",
        float: "a floating-point number (send large or fractional ids as strings)",
        list: "a list",
        dict: "an object",
    }.get(type(value), type(value).__name__)
