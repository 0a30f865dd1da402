"""The /predict body shapes (serving/body_shapes.py), alone and through the Predictor on a
real fitted model: what each shape reads as records/columns and ids, and every ambiguity
refused with a 422 naming the field."""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression

from mlrig.predictions.ids import DEFAULT_ID_FIELDS
from mlrig.serving.body_shapes import Columns, IdNames, Records, predict_shape, record_ids
from mlrig.serving.predictor import Predictor, RequestError
from mlrig.tracking.loading import LoadedModel

FEATURES = ("x1", "x2", "x3")
INDEX = {f: i for i, f in enumerate(FEATURES)}
IDS = IdNames(FEATURES, DEFAULT_ID_FIELDS)
ROW = {"x1": 1.0, "x2": 2.0, "x3": 3.0}


@pytest.fixture(scope="module")
def predictor() -> Predictor:
    frame = pd.DataFrame({"x1": [0.0, 1, 2, 3], "x2": [1.0, 0, 1, 0], "x3": [0.5, 0, 2, 1]})
    model = LinearRegression().fit(frame, 2 * frame["x1"] + 10 * frame["x2"] - frame["x3"])
    return Predictor(LoadedModel(model, "m", "1", None, FEATURES), max_rows=5)


def _shape(body: Any) -> Records | Columns:
    return predict_shape(body, INDEX, IDS)


def _refusal(p: Predictor, body: Any) -> RequestError:
    with pytest.raises(RequestError) as info:
        p.parse_predict(orjson.dumps(body))
    return info.value


# --- what each shape reads as -------------------------------------------------------------------


def test_flat_records_list_and_records_wrapper_are_record_oriented() -> None:
    for body in (ROW, [ROW, ROW], {"records": [ROW]}):
        shaped = _shape(body)
        assert isinstance(shaped, Records) and shaped.outer is None
        assert all(r == ROW for r in shaped.rows)


def test_an_id_beside_one_nested_record_is_that_record_with_the_outer_id() -> None:
    shaped = _shape({"ride_id": "ride_xyz", "ride": ROW})
    assert isinstance(shaped, Records)
    assert shaped.rows == [ROW] and shaped.outer == ("ride_id", "ride_xyz")
    ids = record_ids(shaped.rows, INDEX, IDS, shaped.outer)
    assert (ids.ids, ids.name, ids.in_rows) == (["ride_xyz"], "ride_id", False)


def test_columns_drop_the_id_column_and_keep_its_values() -> None:
    body = {"x1": [1, 2], "x2": [3, 4], "x3": [5, 6], "id": [116139, 256736]}
    shaped = _shape(body)
    assert isinstance(shaped, Columns)
    assert set(shaped.columns) == set(FEATURES) and shaped.n == 2
    assert (shaped.id_name, shaped.id_values) == ("id", [116139, 256736])


def test_a_feature_whose_name_looks_like_an_id_stays_a_feature() -> None:
    index = {"store_id": 0, "x": 1}
    rule = IdNames(index, DEFAULT_ID_FIELDS)
    shaped = predict_shape({"store_id": [1, 2], "x": [3, 4]}, index, rule)
    assert isinstance(shaped, Columns) and shaped.id_name is None
    ids = record_ids([{"store_id": 1, "x": 2, "id": "a"}], index, rule)
    assert (ids.ids, ids.name) == (["a"], "id")


def test_id_names_follow_the_configured_patterns() -> None:
    rule = IdNames(FEATURES, ("key",))
    ids = record_ids([{**ROW, "key": "k1"}], INDEX, rule)
    assert (ids.ids, ids.name) == (["k1"], "key")
    assert record_ids([{**ROW, "ride_id": "r"}], INDEX, rule).ids is None  # not an id


def test_the_name_memo_is_bounded() -> None:
    rule = IdNames(FEATURES, DEFAULT_ID_FIELDS)
    for i in range(3000):
        assert rule.is_id(f"n{i}_id") and not rule.is_id(f"n{i}")
    assert len(rule._known) == IdNames._MAX_KNOWN


# --- through the Predictor: values, ids, echo name -----------------------------------------------


def test_predictor_reads_the_zoomcamp_ride_request(predictor: Predictor) -> None:
    batch = predictor.parse_predict(orjson.dumps({"ride_id": "ride_xyz", "ride": ROW}))
    assert batch.ids == ["ride_xyz"] and batch.client_ids and batch.id_name == "ride_id"
    np.testing.assert_array_equal(batch.x, [[1.0, 2.0, 3.0]])


def test_predictor_reads_columns_exactly_in_feature_order(predictor: Predictor) -> None:
    body = {"x3": [5, 6.5], "id": [116139, "b"], "x1": [1, 2], "x2": [3, 4]}
    batch = predictor.parse_predict(orjson.dumps(body))
    assert batch.ids == ["116139", "b"] and batch.id_name == "id"  # integer ids logged as text
    np.testing.assert_array_equal(batch.x, [[1.0, 3.0, 5.0], [2.0, 4.0, 6.5]])
    assert batch.x.flags.c_contiguous


def test_null_ids_are_generated_and_the_rest_kept(predictor: Predictor) -> None:
    batch = predictor.parse_predict(
        orjson.dumps({"x1": [1, 2], "x2": [3, 4], "x3": [5, 6], "id": [None, "b"]})
    )
    assert batch.ids == [f"{batch.batch_id}-0", "b"] and batch.client_ids


def test_records_with_ride_id_keep_it_as_the_id(predictor: Predictor) -> None:
    body = [{**ROW, "ride_id": "r1"}, {**ROW, "ride_id": "r2"}, ROW]
    batch = predictor.parse_predict(orjson.dumps(body))
    assert batch.ids[:2] == ["r1", "r2"] and batch.id_name == "ride_id"


# --- refusals, each naming the field -------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field", "text"),
    [
        ({"a": ROW, "b": ROW}, "b", "two nested objects 'a' and 'b'"),
        ({"x1": [1], "x2": [2], "x3": 3}, "x1", "is a list but 'x3' is not"),
        ({"x1": [1], "x2": 2, "x3": 3}, "x1", "record 0: field 'x1' must be a number"),
        ({"ride": ROW, "x1": [1]}, "x1", "is a list but 'ride' is not"),
        ({"x1": [1, 2], "x2": [1, 2], "x3": [1]}, "x3", "columns must be equally long"),
        ({"x1": [1], "x2": [1], "x3": [1], "id": [1, 2]}, "id", "equally long"),
        ({"x1": [1], "x2": [1], "x3": [1], "note": [1]}, "note", "unknown column 'note'"),
        ({"x1": [1], "x2": [1]}, "x3", "missing column 'x3'"),
        ({"x1": [1], "x2": [1], "x3": [1], "id": [True]}, "id", "got bool"),
        ({"x1": [1, 2], "x2": [1, 2], "x3": [1, 2], "id": [7, 7.0]}, "id", "duplicate id '7'"),
        ({"x1": [1], "x2": ["a"], "x3": [1]}, "x2", "must be a number"),
        ({**ROW, "id": 1, "ride_id": 2}, "ride_id", "'id' and 'ride_id'"),
        ({"id": 1, "ride_id": 2, "ride": ROW}, "ride_id", "'id' and 'ride_id'"),
        ({"ride_id": 1, "ride": {**ROW, "id": 2}}, "id", "two ids"),
        ({"ride_id": 1, "x1": 1.0, "ride": ROW}, "x1", "beside the nested record 'ride'"),
        ([{**ROW, "id": 1}, {**ROW, "ride_id": 2}], "ride_id", "one id field per request"),
        ({"ride_id": "0123456789abcdef0123456789abcdef-0", "ride": ROW}, "ride_id", "generated"),
    ],
)
def test_ambiguous_or_wrong_bodies_are_a_422_naming_the_field(
    predictor: Predictor, body: Any, field: str, text: str
) -> None:
    err = _refusal(predictor, body)
    assert err.status == 422 and err.field == field and text in err.message, err.as_dict()


def test_an_unrecognised_shape_lists_the_accepted_ones(predictor: Predictor) -> None:
    err = _refusal(predictor, {"a": ROW, "b": ROW})
    assert "one record nested beside its id" in err.message and "columns" in err.message


def test_columns_over_the_batch_limit_are_a_413(predictor: Predictor) -> None:
    err = _refusal(predictor, {f: [1.0] * 6 for f in FEATURES})
    assert err.status == 413


def test_a_feature_sent_as_an_object_is_a_bad_value_not_a_nested_record(
    predictor: Predictor,
) -> None:
    err = _refusal(predictor, {"x1": {"a": 1}, "x2": 1, "x3": 1})
    assert (err.status, err.record, err.field) == (422, 0, "x1")


def test_the_existing_error_for_an_id_beside_features_is_unchanged(predictor: Predictor) -> None:
    err = _refusal(predictor, [{**ROW, "id": "ok"}, {**ROW, "id": ""}])
    assert (err.record, err.field) == (1, "id")
    assert err.message == "record 1: 'id' must not be empty"
