"""Raw-body fuzzing of the request parsers (JSON and text/csv) on real fitted models.

Every body either parses into exactly the rows that were sent (finite, bounded, in feature
order) or is refused with a RequestError: a 4xx, a message, and — when one record is at fault —
the index of a record (and field) that really is bad. Never another exception (a 500), never
a silent wrong answer. Plus one regression test per bug class found in issue 9.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.linear_model import LinearRegression, LogisticRegression

from mlrig.predictions.ids import MAX_ID_CHARS, MAX_INT_ID, BadClientId, check_client_id
from mlrig.serving.predictor import MAX_ABS_VALUE, Batch, Predictor, RequestError
from mlrig.tracking.loading import LoadedModel

FEATURES = ("x1", "x2", "x3")
CLIENT_ERRORS = {400, 413, 415, 422}
FUZZ = settings(
    max_examples=400, deadline=None, database=None, suppress_health_check=list(HealthCheck)
)


def _predictor(max_rows: int = 50) -> Predictor:
    frame = pd.DataFrame({"x1": [0.0, 1, 2, 3], "x2": [1.0, 0, 1, 0], "x3": [0.5, 0, 2, 1]})
    model = LinearRegression().fit(frame, 2 * frame["x1"] + 10 * frame["x2"] - frame["x3"])
    return Predictor(LoadedModel(model, "m", "1", None, FEATURES), max_rows=max_rows)


def _zoned() -> Predictor:
    """A Pipeline with a categorical column, as `mlrig run` builds it."""
    from mlrig.data.schema import FeatureSchema
    from mlrig.training.train import ModelSpec, fit_model

    frame = pd.DataFrame({"zone": ["132", "7", "132", "48"] * 5, "km": [1.0, 2.0, 3.0, 4.0] * 5})
    y = frame["km"] * 2 + (frame["zone"] == "132") * 5
    model = fit_model(
        frame, y, FeatureSchema(("zone", "km"), "y", ("zone",)), ModelSpec("ridge", {"alpha": 0.01})
    )
    return Predictor(LoadedModel(model, "taxi", "1", None, ("zone", "km"), ("zone",)), max_rows=50)


PREDICTOR = _predictor()
ZONED = _zoned()


def _outcome(parse: Any, *args: Any) -> Batch | RequestError:
    """``parse(*args)``; anything but a Batch or a RequestError fails the test."""
    try:
        return parse(*args)
    except RequestError as err:
        assert err.status in CLIENT_ERRORS, err.as_dict()
        assert err.message and orjson.loads(orjson.dumps(err.as_dict()))["error"] == err.message
        return err


def _assert_sound(batch: Batch, p: Predictor) -> None:
    assert batch.x.shape == (len(batch.ids), len(p.features)) and len(batch.ids) >= 1
    numeric = [j for j, f in enumerate(p.features) if f not in p.categorical]
    values = batch.x[:, numeric].astype(np.float64)
    assert np.isfinite(values).all() and (np.abs(values) <= MAX_ABS_VALUE).all()
    assert len(set(batch.ids)) == len(batch.ids)


# --- arbitrary bytes ---------------------------------------------------------------------------

JSON_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**64), max_value=2**64),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4)
    ),
    max_leaves=20,
)
CONTENT_TYPES = st.sampled_from(
    ["application/json", "text/csv", "", "text/plain", "text/csv; charset=utf-8"]
)


@FUZZ
@given(body=st.binary(max_size=300), content_type=CONTENT_TYPES)
def test_any_bytes_are_parsed_soundly_or_refused_with_a_4xx(body: bytes, content_type: str) -> None:
    for p in (PREDICTOR, ZONED):
        for outcome in (
            _outcome(p.parse_predict, body),
            _outcome(p.parse_invocation, body, content_type),
        ):
            if isinstance(outcome, Batch):
                _assert_sound(outcome, p)


@FUZZ
@given(
    value=JSON_VALUES,
    key=st.sampled_from(
        ["dataframe_split", "dataframe_records", "instances", "inputs", "records", "columns"]
    ),
)
def test_any_json_value_in_any_format_is_parsed_soundly_or_refused(value: Any, key: str) -> None:
    # the standard library writes any integer (orjson stops at 64 bits): the parser must cope
    bodies = [json.dumps(value).encode(), json.dumps({key: value}).encode()]
    for p in (PREDICTOR, ZONED):
        for body in bodies:
            for outcome in (
                _outcome(p.parse_predict, body),
                _outcome(p.parse_invocation, body, "application/json"),
            ):
                if isinstance(outcome, Batch):
                    _assert_sound(outcome, p)


# --- structured records: exactly the values sent, or a refusal naming a bad one --------------

CELLS = st.one_of(
    st.floats(min_value=-MAX_ABS_VALUE, max_value=MAX_ABS_VALUE, allow_nan=False),
    st.integers(min_value=-(2**53), max_value=2**53),
    st.sampled_from([1e101, -1e300, 1.7e308, True, False, None, "1", "nan", [1.0], {"a": 1}]),
)


def _good(v: Any) -> bool:
    return type(v) in (int, float) and abs(v) <= MAX_ABS_VALUE


@FUZZ
@given(
    rows=st.lists(st.lists(CELLS, min_size=3, max_size=3), min_size=1, max_size=8),
    form=st.sampled_from(["predict", "records", "instances", "split", "inputs"]),
)
def test_numbers_are_passed_exactly_and_any_bad_one_is_named(
    rows: list[list[Any]], form: str
) -> None:
    records = [dict(zip(FEATURES, r, strict=True)) for r in rows]
    if form == "predict":
        parse = lambda: PREDICTOR.parse_predict(orjson.dumps(records))  # noqa: E731
    else:
        payload: Any = {
            "records": {"dataframe_records": records},
            "instances": {"instances": rows},
            "split": {"dataframe_split": {"columns": list(FEATURES), "data": rows}},
            "inputs": {"inputs": {f: [r[j] for r in rows] for j, f in enumerate(FEATURES)}},
        }[form]
        parse = lambda: PREDICTOR.parse_invocation(orjson.dumps(payload), "application/json")  # noqa: E731
    outcome = _outcome(parse)
    if all(_good(v) for r in rows for v in r):
        assert isinstance(outcome, Batch), outcome
        np.testing.assert_array_equal(outcome.x, np.array(rows, dtype=np.float64))
    else:
        assert isinstance(outcome, RequestError) and outcome.status == 422
        assert outcome.record is not None and outcome.field in FEATURES
        assert not _good(rows[outcome.record][FEATURES.index(outcome.field)])


# --- text/csv ----------------------------------------------------------------------------------

CSV_CELLS = st.one_of(
    st.floats(min_value=-1e6, max_value=1e6, allow_nan=False).map(repr),
    st.integers(-1000, 1000).map(str),
    st.sampled_from(
        ["nan", "NaN", "inf", "-Infinity", "1e400", "-1e999", "", "abc", "1,5", '"2"', "0x10"]
    ),
)


def _csv_float(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) and abs(value) <= MAX_ABS_VALUE else None


@FUZZ
@given(
    order=st.permutations(FEATURES),
    rows=st.lists(st.lists(CSV_CELLS, min_size=1, max_size=5), min_size=1, max_size=6),
    newline=st.sampled_from(["\n", "\r\n", "\r"]),
)
def test_csv_rows_are_read_exactly_or_refused_naming_the_line(
    order: tuple[str, ...], rows: list[list[str]], newline: str
) -> None:
    import csv
    import io

    buf = io.StringIO()
    csv.writer(buf, lineterminator=newline).writerows([list(order), *rows])
    outcome = _outcome(lambda: PREDICTOR.parse_invocation(buf.getvalue().encode(), "text/csv"))
    widths_ok = all(len(r) == 3 for r in rows)
    values = [[_csv_float(v) for v in r] for r in rows]
    if widths_ok and all(v is not None for r in values for v in r):
        assert isinstance(outcome, Batch), outcome
        expected = np.array(values, dtype=np.float64)[:, [order.index(f) for f in FEATURES]]
        np.testing.assert_array_equal(outcome.x, expected)
        return
    assert isinstance(outcome, RequestError) and outcome.status == 422, outcome
    bad = rows[outcome.record]  # type: ignore[index]
    assert f"line {outcome.record + 2}" in outcome.message  # type: ignore[operator]
    if outcome.field is None:
        assert len(bad) != 3 and f"got {len(bad)}" in outcome.message
    else:
        assert _csv_float(bad[order.index(outcome.field)]) is None


# --- one regression test per bug class of issue 9 --------------------------------------------


@pytest.mark.parametrize(
    ("body", "status", "text"),
    [
        (b"x1,x2,x3\r1,2,3\r4,5,6\r", 200, None),  # a bare CR ends lines (was a csv.Error -> 500)
        (b"x1,x2,x3\n" + b"1" * 131_073 + b",2,3\n", 400, "line 2: a field is longer than 131072"),
        (b'x1,x2,x3\n"1,2,3\n', 400, "line 2: unexpected end of data"),
        (b"x1,x2,x3\n1,2,3\n\n4,5,6\n", 200, None),  # blank lines are skipped, as pandas does
        (b"x1,x2,x3\n", 400, "no records in the text/csv body"),
        (b"", 400, "header row"),
        (b"x1,x2,x3\n\xff,1,2\n", 400, "must be UTF-8: invalid byte at offset 9"),
        (b"x1,x2,x3\n1,2,3\n1,2,3,4\n", 422, "record 1 (line 3): expected 3 values"),
        (
            b"x1,x2,x3\n1,2\n",
            422,
            "record 0 (line 2): expected 3 values (one per header column), got 2",
        ),
        (
            b"x1,x2,x3\n1,nan,3\n",
            422,
            "record 0 (line 2): field 'x2' must be a finite number, got str \"nan\"",
        ),
        (b"x1,x2,x3\n1,2,-Infinity\n", 422, "field 'x3' must be a finite number"),
        (b"x1,x2,x3\n1e400,2,3\n", 422, "field 'x1' must be a finite number, got str \"1e400\""),
        (b"x1,x2,x3\n1e101,2,3\n", 422, "field 'x1' must be between -1e+100 and 1e+100"),
    ],
)
def test_csv_bodies_that_once_answered_500_or_a_wrong_number(
    body: bytes, status: int, text: str | None
) -> None:
    outcome = _outcome(PREDICTOR.parse_invocation, body, "text/csv")
    if status == 200:
        assert isinstance(outcome, Batch) and outcome.x.tolist()[-1] == [4.0, 5.0, 6.0]
    else:
        assert isinstance(outcome, RequestError) and outcome.status == status
        assert text is not None and text in outcome.message, outcome.message


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"zone,km\n132,1\n7,2,9\n", None),  # once silently cut to two fields
        (b"zone,km\n132\n", None),
        (b"zone,km\n132,nan\n", "km"),
        (b"zone,km\n132,inf\n", "km"),
    ],
)
def test_categorical_csv_rows_of_the_wrong_width_or_non_finite_are_refused(
    body: bytes, field: str | None
) -> None:
    outcome = _outcome(ZONED.parse_invocation, body, "text/csv")
    assert isinstance(outcome, RequestError) and outcome.status == 422 and outcome.field == field
    assert "line" in outcome.message


@pytest.mark.parametrize("depth", [10, 254, 300, 1000, 1015])  # orjson stops at 1024
def test_deeply_nested_values_get_a_422_not_a_500(depth: int) -> None:
    deep = b"[" * depth + b"1" + b"]" * depth
    bodies = [
        (PREDICTOR.parse_predict, b'{"x1":' + deep + b',"x2":1,"x3":1}', "x1"),
        (PREDICTOR.parse_predict, b'{"x1":1,"x2":1,"x3":1,"id":' + deep + b"}", "id"),
        (ZONED.parse_predict, b'{"zone":' + deep + b',"km":1}', "zone"),
        (
            lambda b: PREDICTOR.parse_invocation(b, "application/json"),
            b'{"instances":[[' + deep + b",1,1]]}",
            "x1",
        ),
        (
            lambda b: PREDICTOR.parse_invocation(b, "application/json"),
            b'{"dataframe_split":{"columns":[' + deep + b'],"data":[[1]]}}',
            None,
        ),
    ]
    for parse, body, field in bodies:
        outcome = _outcome(parse, body)
        assert (
            isinstance(outcome, RequestError) and outcome.status == 422 and outcome.field == field
        )


def test_nesting_beyond_the_json_parser_limit_is_a_400() -> None:
    deep = b"[" * 2000 + b"]" * 2000
    outcome = _outcome(PREDICTOR.parse_predict, deep)
    assert (
        isinstance(outcome, RequestError)
        and outcome.status == 400
        and "not valid JSON" in outcome.message
    )


@pytest.mark.parametrize(
    ("rid", "text"),
    [
        ("a" * (MAX_ID_CHARS + 1), "at most 128 characters long, got 129"),
        ("a\x00b", "control characters, got U+0000 at position 1"),
        ("tab\there", "U+0009"),
        ("\x85", "U+0085"),
        ("", "must not be empty"),
        (MAX_INT_ID + 1, "send it as a string"),
        (True, "got bool"),
        (1.5, "got float"),
        ({"a": 1}, "got dict"),
        ("0123456789abcdef0123456789abcdef-3", "form of a generated id"),
    ],
)
def test_bad_client_ids_are_a_422_naming_the_record(rid: object, text: str) -> None:
    body = orjson.dumps(
        [{"x1": 1, "x2": 1, "x3": 1, "id": "ok"}, {"x1": 1, "x2": 1, "x3": 1, "id": rid}]
    )
    outcome = _outcome(PREDICTOR.parse_predict, body)
    assert isinstance(outcome, RequestError), outcome
    assert (outcome.status, outcome.record, outcome.field) == (422, 1, "id")
    assert outcome.message.startswith("record 1: 'id' ") and text in outcome.message


@pytest.mark.parametrize(
    ("rid", "stored"),
    [
        ("a" * MAX_ID_CHARS, "a" * MAX_ID_CHARS),
        (MAX_INT_ID, str(MAX_INT_ID)),
        (-7, "-7"),
        (38.0, "38"),
        ("é 🍷", "é 🍷"),
    ],
)
def test_good_client_ids_are_kept_as_text(rid: object, stored: str) -> None:
    assert check_client_id(rid) == stored
    batch = PREDICTOR.parse_predict(orjson.dumps({"x1": 1, "x2": 1, "x3": 1, "id": rid}))
    assert batch.ids == [stored] and batch.client_ids


@given(st.text(max_size=200) | st.integers() | st.floats() | st.none() | st.booleans())
@FUZZ
def test_check_client_id_returns_storable_text_or_refuses(value: object) -> None:
    try:
        text = check_client_id(value)
    except BadClientId as exc:
        assert str(exc)
        return
    assert 1 <= len(text) <= MAX_ID_CHARS
    assert not any(
        ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F or 0xD800 <= ord(c) <= 0xDFFF for c in text
    )


def test_invocations_take_no_client_ids() -> None:
    body = orjson.dumps({"dataframe_records": [{"x1": 1, "x2": 1, "x3": 1, "id": "a"}]})
    outcome = _outcome(PREDICTOR.parse_invocation, body, "application/json")
    assert isinstance(outcome, RequestError) and (outcome.status, outcome.field) == (422, "id")


@pytest.mark.parametrize(
    "body",
    [
        {"instances": [[1, 2, 3]], "params": {"k": 1}},
        {"dataframe_split": {"columns": list(FEATURES), "data": [[1, 2, 3]], "extra": 1}},
        {"records": [{"x1": 1, "x2": 1, "x3": 1}], "more": 1},
    ],
)
def test_unknown_keys_are_refused_not_ignored(body: dict[str, Any]) -> None:
    raw = orjson.dumps(body)
    parse = (
        PREDICTOR.parse_predict
        if "records" in body
        else (lambda b: PREDICTOR.parse_invocation(b, "application/json"))
    )
    outcome = _outcome(parse, raw)
    assert (
        isinstance(outcome, RequestError)
        and outcome.status == 400
        and "unknown key" in outcome.message
    )


def test_an_output_that_overflows_is_refused_per_record() -> None:
    preds, proba = PREDICTOR.predict(np.array([[1.0, 1, 1], [1e308, 1e308, -1e308]]))
    refused = PREDICTOR.unanswerable(preds, proba)
    assert refused is not None and (refused.status, refused.record) == (422, 1)
    assert PREDICTOR.unanswerable(preds[:1], None) is None


def test_a_classifier_with_non_finite_probabilities_is_refused_not_class_0() -> None:
    x = np.array([[0.0, 1], [1, 0], [2, 1], [3, 0]])
    clf = LogisticRegression().fit(x, [0, 1, 0, 1])
    p = Predictor(LoadedModel(clf, "c", "1", None, ("a", "b"), (), "classification"), max_rows=5)
    preds, proba = p.predict(np.array([[1.0, 1.0], [np.nan, 1.0]]))
    refused = p.unanswerable(preds, proba)
    assert refused is not None and refused.record == 1
