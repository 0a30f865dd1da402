"""Which accepted ``/predict`` shape a parsed JSON body has, and the client's ids in it.

Accepted with no configuration beyond the model's features and the id-name patterns
(``serving.id_fields``, read by :func:`mlrig.predictions.ids.id_field`):

- one record ``{feature: value, ..., "id": ...}``, a list of them, or ``{"records": [...]}``;
- one record nested under a single key beside its id, ``{"ride_id": "r1", "ride": {...}}``
  (the zoomcamp's request);
- columns ``{feature: [values], ..., "id": [ids]}``, as ``DataFrame.to_dict("list")`` writes
  them (ml-pipes' request).

The shape is decided from the top-level keys and value types alone, so a body of 1,000 records
costs one pass over the records (for their ids) and none over their values here; the Predictor
builds the matrix as before. A body that fits no shape, or two at once, is a 422 naming the
field and listing the shapes. Pure functions of the parsed value.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from mlrig.predictions.ids import id_field
from mlrig.serving.bad_request import RequestError
from mlrig.serving.json_body import client_id, no_other_keys

SHAPES = (
    'send one record {feature: value, ...}, a list of them, {"records": [...]}, one record '
    'nested beside its id ({"ride_id": ..., "ride": {feature: value, ...}}), or columns '
    "{feature: [values], ...}; an id goes under a field named as serving.id_fields says "
    "(default: 'id' or a name ending in '_id')"
)


class IdNames:
    """One model's id rule (:func:`mlrig.predictions.ids.id_field`: a name matching
    ``patterns`` that is no feature), memoised per name: clients send the same few names on
    every request, and matching a name costs more than the rest of a one-record parse."""

    _MAX_KNOWN = 1024  # names remembered; a client inventing names cannot grow it further

    def __init__(self, features: Collection[str], patterns: Sequence[str]) -> None:
        self.features = features
        self.patterns = tuple(patterns)
        self._known: dict[str, bool] = {}
        self.last: str | None = None  # the id field last found: most likely the next one too

    def is_id(self, name: str) -> bool:
        known = self._known.get(name)
        if known is None:
            known = id_field([name], self.features, self.patterns) is not None
            if len(self._known) < self._MAX_KNOWN:
                self._known[name] = known
        return known

    def one(self, names: list[str], record: int | None) -> str | None:
        """The one id field among ``names``, or None; two are a 422 naming the second."""
        found = [n for n in names if self.is_id(n)]
        if len(found) < 2:
            if not found:
                return None
            self.last = found[0]
            return found[0]
        try:
            id_field(found, self.features, self.patterns)  # words the refusal
        except ValueError as exc:
            where = "" if record is None else f"record {record}: "
            raise RequestError(422, f"{where}{exc}: send one id", record, found[1]) from None
        raise AssertionError("id_field accepted two id fields")  # pragma: no cover


class Records(NamedTuple):
    """Record-oriented: ``rows`` (not yet checked to be objects) and, for the nested form,
    the (name, value) of the id sent beside the one record. (A NamedTuple, as Ids: made on
    every request, where a frozen dataclass costs a microsecond.)"""

    rows: list[Any]
    outer: tuple[str, Any] | None = None


@dataclass(frozen=True)
class Columns:
    """Column-oriented: every feature's values (``n`` each) and the raw id column, if any."""

    columns: dict[str, list[Any]]
    n: int
    id_name: str | None
    id_values: list[Any] | None


class Ids(NamedTuple):
    """The client's ids per record (None where one is to be generated; ``ids`` None when the
    body sent none), the field they came under, and whether that field is a key of each
    record (to be allowed beside the features)."""

    ids: list[str | None] | None
    name: str | None
    in_rows: bool


def predict_shape(data: Any, features: Mapping[str, int], ids: IdNames) -> Records | Columns:
    """The shape of a parsed /predict body. Raises RequestError (422, or 400 for unknown keys
    beside ``records``) when it is ambiguous or fits none."""
    if type(data) is list:
        return Records(data)
    if type(data) is not dict:
        return Records([data])  # refused by record_ids: "record 0: expected a JSON object"
    records = data.get("records")
    if type(records) is list and "records" not in features:
        no_other_keys(data, {"records"}, 'a {"records": [...]} body')
        return Records(records)
    for value in data.values():  # the common case, one flat record, in one cheap pass
        kind = type(value)
        if kind is list or kind is dict:
            break
    else:
        return Records([data])
    lists: list[str] = []
    nested: list[str] = []
    for key, value in data.items():
        kind = type(value)
        if kind is list:
            lists.append(key)
        elif kind is dict and key not in features and not ids.is_id(key):
            nested.append(key)
    if not nested and len(lists) < len(data) - len(lists):
        return Records([data])  # a record with a bad value or two: its check names them
    if lists and (nested or len(lists) < len(data)):
        other = nested[0] if nested else next(k for k in data if type(data[k]) is not list)
        raise RequestError(
            422,
            f"field {lists[0]!r} is a list but {other!r} is not (columns need a list for every "
            f"field, a record one value per feature): {SHAPES}",
            None,
            lists[0],
        )
    if nested:
        return _nested(data, nested, ids)
    return _columns(data, features, ids)


def _nested(data: dict[str, Any], nested: list[str], ids: IdNames) -> Records:
    if len(nested) > 1:
        raise RequestError(
            422,
            f"two nested objects {nested[0]!r} and {nested[1]!r}: the features go at the top "
            f"level or in exactly one nested object; {SHAPES}",
            None,
            nested[1],
        )
    key = nested[0]
    beside = [k for k in data if k != key]
    name = ids.one(beside, None)
    stray = next((k for k in beside if k != name), None)
    if stray is not None:
        raise RequestError(
            422,
            f"field {stray!r} beside the nested record {key!r}: only the id may go beside it, "
            f"the features go inside; {SHAPES}",
            None,
            stray,
        )
    return Records([data[key]], None if name is None else (name, data[name]))


def _columns(data: dict[str, Any], features: Mapping[str, int], ids: IdNames) -> Columns:
    extra = [k for k in data if k not in features]
    name = ids.one(extra, None)
    unknown = next((k for k in extra if k != name), None)
    if unknown is not None:
        raise RequestError(
            422,
            f"unknown column {unknown!r} (expected {list(features)}, and optionally one id column)",
            None,
            unknown,
        )
    missing = next((f for f in features if f not in data), None)
    if missing is not None:
        raise RequestError(422, f"missing column {missing!r}", None, missing)
    first = next(iter(features))
    n = len(data[first])
    for key, values in data.items():
        if len(values) != n:
            raise RequestError(
                422,
                f"columns must be equally long: {key!r} has {len(values)} values, {first!r} "
                f"has {n}",
                None,
                key,
            )
    if name is None:
        return Columns(data, n, None, None)
    columns = {k: v for k, v in data.items() if k != name}
    return Columns(columns, n, name, data[name])


def record_ids(
    rows: list[Any],
    features: Mapping[str, int],
    id_names: IdNames,
    outer: tuple[str, Any] | None = None,
) -> Ids:
    """Check that every row is an object and read the client's ids: one id field per request,
    each id valid (mlrig.predictions.ids) and unique. A row with exactly the features' count of
    keys, or one more that is the id field already found, costs no name matching."""
    width = len(features)
    name: str | None = None
    first = -1
    ids: list[str | None] | None = None
    seen: set[str] = set()
    for i, rec in enumerate(rows):
        if type(rec) is not dict:
            raise RequestError(422, f"record {i}: expected a JSON object of features", i)
        if len(rec) == width:
            continue
        if name is None or len(rec) != width + 1 or name not in rec:
            last = id_names.last
            if len(rec) == width + 1 and last is not None and last in rec:
                found: str | None = last  # the one key beyond the features' count
            else:
                found = id_names.one([k for k in rec if k not in features], i)
            if found is None:
                continue  # unknown fields: named by the Predictor's field check
            if name is None:
                name, first, ids = found, i, [None] * len(rows)
            elif found != name:
                raise RequestError(
                    422,
                    f"record {i}: id field {found!r}, but record {first} has {name!r}: use one "
                    "id field per request",
                    i,
                    found,
                )
        value = rec[name]
        if value is not None and ids is not None:
            rid = client_id(value, i, name)
            if rid in seen:
                raise RequestError(
                    422, f"record {i}: duplicate id {rid!r} in this request", i, name
                )
            seen.add(rid)
            ids[i] = rid
    if outer is None:
        return Ids(ids, name, name is not None)
    outer_name, value = outer
    if name is not None:
        raise RequestError(
            422,
            f"two ids: {outer_name!r} beside the nested record and {name!r} inside it: send one",
            0,
            name,
        )
    return Ids([None if value is None else client_id(value, 0, outer_name)], outer_name, False)


def column_ids(values: list[Any], name: str) -> list[str | None]:
    """The id column's values as client ids (None where null: generated), each valid and
    unique; the 422 names the record and the column."""
    seen: set[str] = set()
    ids: list[str | None] = []
    for i, value in enumerate(values):
        if value is None:
            ids.append(None)
            continue
        rid = client_id(value, i, name)
        if rid in seen:
            raise RequestError(422, f"record {i}: duplicate id {rid!r} in this request", i, name)
        seen.add(rid)
        ids.append(rid)
    return ids
