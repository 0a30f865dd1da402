"""The framework-free predictor on a real (tiny) fitted scikit-learn model."""

from __future__ import annotations

import numpy as np
import orjson
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression

from mlrig.serving.predictor import Predictor, RequestError
from mlrig.tracking.loading import LoadedModel

FEATURES = ("x1", "x2")


@pytest.fixture
def predictor() -> Predictor:
    frame = pd.DataFrame({"x1": [0.0, 1.0, 2.0, 3.0], "x2": [1.0, 0.0, 1.0, 0.0]})
    model = LinearRegression().fit(frame, 2 * frame["x1"] + 10 * frame["x2"])
    return Predictor(LoadedModel(model, "m", "3", None, FEATURES), max_rows=3)


def _b(obj: object) -> bytes:
    return orjson.dumps(obj)


def test_records_keep_client_ids_and_feature_order(predictor: Predictor) -> None:
    batch = predictor.parse_predict(_b([{"x2": 1, "x1": 2.0, "id": "a"}, {"x1": 1, "x2": 0}]))
    assert batch.ids == ["a", f"{batch.batch_id}-1"] and batch.client_ids
    np.testing.assert_allclose(predictor.predict(batch.x)[0], [14.0, 2.0])


def test_single_object_is_one_record(predictor: Predictor) -> None:
    assert predictor.parse_predict(_b({"x1": 1, "x2": 1})).x.shape == (1, 2)


@pytest.mark.parametrize(
    ("body", "status", "field", "record"),
    [
        ({"x1": 1}, 422, "x2", 0),
        ([{"x1": 1, "x2": 1}, {"x1": "1", "x2": 1}], 422, "x1", 1),
        ({"x1": 1, "x2": 1, "x3": 1}, 422, "x3", 0),
        ({"x1": 1, "x2": 1, "id": {"a": 1}}, 422, "id", 0),
        ([{"x1": 1, "x2": 1}] * 4, 413, None, None),
        ([], 400, None, None),
    ],
)
def test_predict_refusals_name_record_and_field(
    predictor: Predictor, body: object, status: int, field: str | None, record: int | None
) -> None:
    with pytest.raises(RequestError) as err:
        predictor.parse_predict(_b(body))
    assert (err.value.status, err.value.field, err.value.record) == (status, field, record)


@pytest.mark.parametrize(
    "body",
    [
        {"dataframe_split": {"columns": ["x1", "x2"], "data": [[1, 2], [True, 1]]}},
        {"dataframe_records": [{"x1": 1, "x2": 2}, {"x1": False, "x2": 1}]},
        {"instances": [[1, 2], [1, None]]},
        {"inputs": {"x1": [1, 2], "x2": [3, "4"]}},
    ],
)
def test_fast_numeric_path_still_refuses_booleans_nulls_and_strings(
    predictor: Predictor, body: object
) -> None:
    with pytest.raises(RequestError) as err:
        predictor.parse_invocation(_b(body), "application/json")
    assert err.value.status == 422 and err.value.record == 1 and err.value.field in ("x1", "x2")


def test_generated_ids_share_one_batch_id(predictor: Predictor) -> None:
    batch = predictor.parse_invocation(_b({"instances": [[1, 2], [3, 4]]}), "application/json")
    assert batch.ids == [f"{batch.batch_id}-0", f"{batch.batch_id}-1"] and not batch.client_ids


def test_invocation_formats_agree(predictor: Predictor) -> None:
    bodies = [
        _b({"dataframe_split": {"columns": ["x2", "x1"], "data": [[1, 2], [0, 1]]}}),
        _b({"dataframe_records": [{"x1": 2, "x2": 1}, {"x1": 1, "x2": 0}]}),
        _b({"instances": [[2, 1], [1, 0]]}),
        _b({"inputs": {"x1": [2, 1], "x2": [1, 0]}}),
    ]
    for body in bodies:
        np.testing.assert_allclose(
            predictor.predict(predictor.parse_invocation(body, "application/json").x)[0], [14, 2]
        )
    csv = predictor.parse_invocation(b"x1,x2\n2,1\n1,0\n", "text/csv; charset=utf-8")
    np.testing.assert_allclose(predictor.predict(csv.x)[0], [14, 2])
    with pytest.raises(RequestError, match="'x1' must be a number"):
        predictor.parse_invocation(b"x1,x2\nabc,1\n", "text/csv")
    with pytest.raises(RequestError, match="unknown field 'z'"):
        predictor.parse_invocation(
            _b({"dataframe_split": {"columns": ["x1", "z"], "data": [[1, 2]]}}), "application/json"
        )


def test_categorical_fields_take_strings_or_integer_ids(zoned: Predictor) -> None:
    batch = zoned.parse_predict(_b([{"zone": 132, "km": 1}, {"zone": "132", "km": 1.0}]))
    assert batch.x.dtype == object and batch.x[0, 0] == "132"
    preds, _ = zoned.predict(batch.x)
    assert preds[0] == pytest.approx(preds[1]) and preds[0] == pytest.approx(7.0, abs=0.2)
    unknown = zoned.parse_predict(_b({"zone": "999", "km": 1}))  # unseen zone: still answers
    assert np.isfinite(zoned.predict(unknown.x)[0]).all()


@pytest.mark.parametrize(
    ("record", "field", "message"),
    [
        ({"zone": True, "km": 1}, "zone", "categorical and must be a string or integer"),
        ({"zone": None, "km": 1}, "zone", "categorical"),
        ({"zone": "7", "km": "far"}, "km", "must be a number"),
        ({"km": 1}, "zone", "missing feature"),
    ],
)
def test_categorical_model_names_the_bad_field(
    zoned: Predictor, record: dict[str, object], field: str, message: str
) -> None:
    with pytest.raises(RequestError) as err:
        zoned.parse_predict(_b(record))
    assert err.value.status == 422 and err.value.field == field and message in err.value.message


def test_categorical_model_reads_mlflow_split_and_csv(zoned: Predictor) -> None:
    split = zoned.parse_invocation(
        _b({"dataframe_split": {"columns": ["km", "zone"], "data": [[2.0, "7"], [1, 132]]}}),
        "application/json",
    )
    assert split.x.tolist() == [["7", 2.0], ["132", 1.0]]
    csv = zoned.parse_invocation(b"zone,km\n132,1\n7,2\n", "text/csv")
    assert csv.x.tolist() == [["132", 1.0], ["7", 2.0]]


def test_classifier_answers_integer_labels() -> None:
    from sklearn.linear_model import LogisticRegression

    frame = pd.DataFrame({"x1": [0.0, 1.0, 2.0, 3.0], "x2": [1.0, 0.0, 1.0, 0.0]})
    model = LogisticRegression().fit(frame, [0, 0, 1, 1])
    p = Predictor(LoadedModel(model, "m", "1", None, FEATURES, task="classification"), max_rows=3)
    batch = p.parse_predict(_b([{"x1": 0, "x2": 1}, {"x1": 3, "x2": 0}]))
    assert p.answer_values(p.predict(batch.x)[0]) == [0, 1]


def test_classifier_labels_are_the_argmax_of_the_probabilities_it_returns() -> None:
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(90, 2)), columns=list(FEATURES))
    y = np.repeat([3, 5, 8], 30)
    frame["x1"] += y  # separable enough that every class is predicted
    model = LogisticRegression().fit(frame, y)
    p = Predictor(LoadedModel(model, "m", "1", None, FEATURES, task="classification"), 100)
    labels, proba = p.predict(frame.to_numpy())
    assert proba is not None and proba.shape == (90, 3)
    np.testing.assert_allclose(proba, model.predict_proba(frame.to_numpy()))
    np.testing.assert_array_equal(labels, model.predict(frame.to_numpy()))
    assert p.classes == ("3", "5", "8")
    first = p.answer_probabilities(proba[:1])[0]
    assert set(first) == {"3", "5", "8"} and abs(sum(first.values()) - 1) < 1e-9


def test_binary_classifier_answers_the_positive_class_probability() -> None:
    from sklearn.linear_model import LogisticRegression

    frame = pd.DataFrame({"x1": [0.0, 1.0, 2.0, 3.0], "x2": [1.0, 0.0, 1.0, 0.0]})
    model = LogisticRegression().fit(frame, [0, 0, 1, 1])
    p = Predictor(LoadedModel(model, "m", "1", None, FEATURES, task="classification"), 10)
    _, proba = p.predict(frame.to_numpy())
    assert proba is not None
    assert p.answer_probabilities(proba) == pytest.approx(model.predict_proba(frame.to_numpy())[:, 1].tolist())


def test_regressor_has_no_probabilities(predictor: Predictor) -> None:
    batch = predictor.parse_predict(_b({"x1": 1, "x2": 2}))
    assert predictor.predict(batch.x)[1] is None and predictor.classes is None
