"""The rule for prediction ids a client sends: checked once, at the edge, before a request can
reach the group commit.

An id that the store cannot hold fails the whole transaction it is in: on PostgreSQL an id over
128 characters (the ``String(128)`` id columns) or with a NUL byte aborts the group commit, so
every request sharing it would get a 503. Checking here turns that into one 422 for the request
that sent it.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Sequence

from mlrig.data.id_columns import DEFAULT_ID_FIELDS, id_names

MAX_ID_CHARS = 128  # the store's id columns are String(128)
# Unicode's control characters (category Cc: C0, DEL, C1) and lone surrogates (Cs).
_FORBIDDEN = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
# Integer ids stay within JavaScript's safe range: a larger one would come back rounded from a
# browser or a JSON library that reads numbers as doubles, and its feedback join the wrong row.
MAX_INT_ID = 2**53 - 1


class BadClientId(ValueError):
    """The id breaks the rule; the message says how, to follow "record N: 'id' "."""


def check_client_id(value: object) -> str:
    """The id as the store keeps it (text). Accepts a non-empty string of at most 128
    characters with no control characters (C0, DEL, C1) nor lone surrogates, or an integer
    within ±(2**53 - 1) (not a boolean; an integral float counts). Pure; raises BadClientId."""
    if isinstance(value, float) and value.is_integer() and abs(value) <= MAX_INT_ID:
        value = int(value)  # JSON's 38.0 is the integer 38 (as JSON Schema reads it)
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        kind = "null" if value is None else type(value).__name__
        raise BadClientId(f"must be a string or an integer, got {kind}")
    if isinstance(value, int):
        if abs(value) > MAX_INT_ID:
            raise BadClientId(f"as an integer must be within ±{MAX_INT_ID}: send it as a string")
        return str(value)
    if not value:
        raise BadClientId("must not be empty")
    if len(value) > MAX_ID_CHARS:
        raise BadClientId(f"must be at most {MAX_ID_CHARS} characters long, got {len(value)}")
    bad = _FORBIDDEN.search(value)
    if bad is not None:
        raise BadClientId(
            "must not contain control characters, "
            f"got U+{ord(bad.group()):04X} at position {bad.start()}"
        )
    return value



def id_field(
    names: Iterable[str], features: Collection[str], patterns: Sequence[str] = DEFAULT_ID_FIELDS
) -> str | None:
    """The one name in ``names`` that carries the record id (mlrig.data.id_columns): None when
    there is none; ValueError naming both when two names qualify. Pure."""
    found = id_names(names, features, patterns)
    if len(found) > 1:
        raise ValueError(f"two fields could be the id: {found[0]!r} and {found[1]!r}")
    return found[0] if found else None
