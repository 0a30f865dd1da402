"""The Open Inference Protocol's pure parts (serving/v2.py) on real (tiny) fitted models."""

from __future__ import annotations

import struct

import numpy as np
import orjson
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.linear_model import LinearRegression, LogisticRegression

from mlrig.predictions.ids import DEFAULT_ID_FIELDS
from mlrig.serving import v2
from mlrig.serving.predictor import Predictor, RequestError
from mlrig.tracking.loading import LoadedModel

FEATURES = ("x1", "x2")


@pytest.fixture
def predictor() -> Predictor:
    frame = pd.DataFrame({"x1": [0.0, 1.0, 2.0, 3.0], "x2": [1.0, 0.0, 1.0, 0.0]})
    model = LinearRegression().fit(frame, 2 * frame["x1"] + 10 * frame["x2"])
    return Predictor(LoadedModel(model, "m", "3", None, FEATURES), max_rows=5)


@pytest.fixture
def classifier() -> Predictor:
    frame = pd.DataFrame({"x1": [0.0, 1.0, 2.0, 3.0] * 3, "x2": [1.0, 0.0, 1.0, 0.0] * 3})
    model = LogisticRegression().fit(frame, [0, 1, 2, 2] * 3)
    task = "classification"
    return Predictor(LoadedModel(model, "c", "1", None, FEATURES, task=task), max_rows=5)


def _t(name: str, data: list[object], datatype: str = "FP64", shape: list[int] | None = None):  # type: ignore[no-untyped-def]
    return {"name": name, "shape": shape or [len(data)], "datatype": datatype, "data": data}


def _parse(p: Predictor, body: object, version: str | None = None) -> v2.V2Batch:
    return v2.parse_infer(p, orjson.dumps(body), p.name, version, None, DEFAULT_ID_FIELDS)


def _refusal(p: Predictor, body: object, name: str | None = None) -> RequestError:
    with pytest.raises(RequestError) as err:
        v2.parse_infer(p, orjson.dumps(body), name or p.name, None, None, DEFAULT_ID_FIELDS)
    return err.value


def test_columnar_and_2d_forms_give_the_same_rows(predictor: Predictor) -> None:
    columnar = _parse(predictor, {"inputs": [_t("x2", [1, 0]), _t("x1", [2.0, 1.0], "FP32")]})
    flat = _parse(predictor, {"inputs": [_t("in", [2, 1, 1, 0], "INT64", [2, 2])]})
    nested = _parse(predictor, {"inputs": [_t("in", [[2, 1], [1, 0]], "FP64", [2, 2])]})
    as_column = _parse(
        predictor, {"inputs": [_t("x1", [[2], [1]], shape=[2, 1]), _t("x2", [1, 0])]}
    )
    for batch in (columnar, flat, nested, as_column):
        np.testing.assert_allclose(batch.x, [[2, 1], [1, 0]])
        assert not batch.client_ids and batch.ids[0] == f"{batch.batch_id}-0"


def test_an_id_input_gives_client_ids_and_the_answer_echoes_them(predictor: Predictor) -> None:
    body = {
        "id": "req-9",
        "inputs": [_t("x1", [2, 1]), _t("x2", [1, 0]), _t("ride_id", ["a", 7], "BYTES")],
        "outputs": [{"name": "id"}, {"name": "predict"}],
    }
    batch = _parse(predictor, body)
    assert batch.ids == ["a", "7"] and batch.client_ids
    preds, proba = predictor.predict(batch.x)
    out = v2.answer(predictor, batch, preds, proba)
    assert out["model_name"] == "m" and out["model_version"] == "3" and out["id"] == "req-9"
    assert [o["name"] for o in out["outputs"]] == ["id", "predict"]
    assert out["outputs"][0]["data"] == ["a", "7"]
    assert out["outputs"][1]["datatype"] == "FP64" and out["outputs"][1]["shape"] == [2]
    np.testing.assert_allclose(out["outputs"][1]["data"], [14, 2])


def test_classifier_answers_labels_and_probabilities(classifier: Predictor) -> None:
    batch = _parse(classifier, {"inputs": [_t("x1", [0, 3]), _t("x2", [1, 0])]})
    preds, proba = classifier.predict(batch.x)
    out = {o["name"]: o for o in v2.answer(classifier, batch, preds, proba)["outputs"]}
    assert out["predict"]["datatype"] == "INT64" and set(out["predict"]["data"]) <= {0, 1, 2}
    assert out["predict_proba"]["shape"] == [2, 3]
    np.testing.assert_allclose(np.reshape(out["predict_proba"]["data"], (2, 3)).sum(axis=1), 1)
    meta = v2.model_metadata(classifier)
    assert [o["name"] for o in meta["outputs"]] == ["predict", "predict_proba", "id"]


def test_categorical_features_take_bytes(zoned: Predictor) -> None:
    batch = _parse(zoned, {"inputs": [_t("zone", ["132", "7"], "BYTES"), _t("km", [1.0, 2.0])]})
    assert batch.x.tolist() == [["132", 1.0], ["7", 2.0]]
    meta = v2.model_metadata(zoned)
    assert {i["name"]: i["datatype"] for i in meta["inputs"]} == {"zone": "BYTES", "km": "FP64"}
    assert all(i["shape"] == [-1] for i in meta["inputs"])
    wrong = _refusal(zoned, {"inputs": [_t("zone", [1.5]), _t("km", [1.0])]})
    assert wrong.status == 422 and "categorical" in wrong.message and wrong.field == "zone"


@pytest.mark.parametrize(
    ("body", "status", "field", "words"),
    [
        ({"inputs": [_t("x1", [1])]}, 422, "x2", "missing input 'x2'"),
        ({"inputs": [_t("x1", [1]), _t("x2", [1]), _t("x3", [1])]}, 422, "x3", "unknown input"),
        ({"inputs": [_t("x1", [1, 2]), _t("x2", [1])]}, 422, "x1", "different numbers of rows"),
        ({"inputs": [_t("in", [1, 2, 3], shape=[1, 3])]}, 422, "in", "expected [n, 2]"),
        ({"inputs": [_t("x1", [1, 2], shape=[3])]}, 422, "x1", "holds 3 values"),
        ({"inputs": [_t("x1", [1]), _t("x2", ["a"], "BYTES")]}, 422, "x2", "is numeric"),
        ({"inputs": [_t("x1", [1, 2]), _t("x2", [1, "a"])]}, 422, "x2", "record 1"),
        ({"inputs": [_t("x1", [1, 2]), _t("x2", [1, True])]}, 422, "x2", "record 1"),
        ({"inputs": [_t("x1", [1]), _t("x2", [1e300])]}, 422, "x2", "must be between"),
        ({"inputs": [_t("x1", [1]), _t("x2", [1], "COMPLEX")]}, 422, "x2", "unknown datatype"),
        ({"inputs": [_t("x1", [1] * 6), _t("x2", [1] * 6)]}, 413, None, "limit of 5"),
        ({"inputs": []}, 400, None, "non-empty list"),
        ({"inputs": [_t("x1", [1]), _t("x2", [1])], "params": {}}, 400, "params", "unknown key"),
        (
            {"inputs": [_t("x1", [1]), _t("x2", [1])], "model_name": "n"},
            400,
            None,
            "differs from the path's 'm'",
        ),
        (
            {"inputs": [_t("x1", [1]), _t("x2", [1])], "model_version": "9"},
            404,
            None,
            "version '9' is not served",
        ),
        (
            {"inputs": [_t("x1", [1]), _t("x2", [1])], "outputs": [{"name": "nope"}]},
            400,
            None,
            "unknown output 'nope'",
        ),
        (
            {"inputs": [_t("x1", [1, 2]), _t("x2", [1, 2]), _t("id", ["a", "a"], "BYTES")]},
            422,
            "id",
            "duplicate id",
        ),
    ],
)
def test_refusals_name_input_record_and_field(
    predictor: Predictor, body: object, status: int, field: str | None, words: str
) -> None:
    err = _refusal(predictor, body)
    assert (err.status, err.field) == (status, field)
    assert words in err.message
    assert v2.error(err) == {"error": err.message}


def test_a_model_or_version_not_served_is_404_naming_what_is(predictor: Predictor) -> None:
    body = {"inputs": [_t("x1", [1]), _t("x2", [1])]}
    err = _refusal(predictor, body, name="other")
    assert err.status == 404 and "'m'" in err.message and "version 3" in err.message
    with pytest.raises(RequestError, match="version '2' is not served"):
        _parse(predictor, body, version="2")
    assert _parse(predictor, body, version="3").x.shape == (1, 2)


def test_binary_tensor_data_is_read(zoned: Predictor) -> None:
    """Triton's binary extension (tritonclient's default): JSON header, then raw inputs."""
    zones = b"".join(struct.pack("<I", len(z)) + z for z in (b"132", b"48"))
    km = np.array([1.0, np.nan]).astype("<f8").tobytes()
    header = orjson.dumps(
        {
            "inputs": [
                {"name": "zone", "shape": [2], "datatype": "BYTES",
                 "parameters": {"binary_data_size": len(zones)}},
                {"name": "km", "shape": [2], "datatype": "FP64",
                 "parameters": {"binary_data_size": len(km)}},
            ]
        }
    )  # fmt: skip
    parse = v2.parse_infer
    with pytest.raises(RequestError, match="record 1: field 'km' must be a finite number"):
        parse(zoned, header + zones + km, "taxi", None, str(len(header)), DEFAULT_ID_FIELDS)
    km = np.array([1.0, 2.0]).astype("<f8").tobytes()
    batch = parse(zoned, header + zones + km, "taxi", None, str(len(header)), DEFAULT_ID_FIELDS)
    assert batch.x.tolist() == [["132", 1.0], ["48", 2.0]]


def test_infer_paths() -> None:
    assert v2.infer_target("/v2/models/wine/infer") == ("wine", None)
    assert v2.infer_target("/v2/models/wine/versions/4/infer") == ("wine", "4")
    assert v2.infer_target("/v2/models/wine") is None
    assert v2.infer_target("/v2/models//infer") is None


_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats()
    | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=4),
    max_leaves=12,
)
_tensor = st.fixed_dictionaries(
    {
        "name": st.sampled_from(["x1", "x2", "id", "in", "x1"]),
        "shape": st.lists(st.integers(-1, 4), min_size=0, max_size=3) | _json,
        "datatype": st.sampled_from(["FP64", "FP32", "INT64", "BYTES", "BOOL", "X"]) | _json,
        "data": _json,
    }
)
_bad = st.one_of(
    st.floats(), st.integers(-(2**63), 2**63 - 1), st.booleans(), st.none(), st.text(max_size=3),
    st.lists(st.floats(), max_size=2),
)  # fmt: skip
# Mostly good numbers with now and then anything: the fuzz reaches accepted bodies too.
_value = st.integers(0, 29).flatmap(lambda k: _bad if k == 0 else st.floats(-1e6, 1e6))


def _column(name: str, n: int) -> st.SearchStrategy[dict[str, object]]:
    return st.fixed_dictionaries(
        {
            "name": st.sampled_from([name] * 8 + ["id", "row_id", "in"]),
            "shape": st.sampled_from([[n]] * 6 + [[n, 1], [n, 2], [n // 2, 2], [n + 1]]),
            "datatype": st.sampled_from(["FP64", "FP32", "INT64"] * 3 + ["BYTES"]),
            "data": st.lists(_value, min_size=n, max_size=n) | st.just([[1.5, 2]] * n),
        }
    )


_columns = (
    st.integers(0, 5)
    .flatmap(
        lambda n: st.tuples(
            _column("x1", n), _column("x2", n), st.lists(_column("id", n), max_size=1)
        )
    )
    .map(lambda t: [t[0], t[1], *t[2]])
)
_body = st.fixed_dictionaries(
    {"inputs": _columns | _columns | _columns | st.lists(_tensor, max_size=2) | _json},
    optional={"id": _json, "outputs": _json, "model_name": _json},
)


def test_any_body_is_a_checked_batch_or_a_request_error(predictor: Predictor) -> None:
    """Fuzz: never another exception; an accepted batch is finite and has one id per row."""
    accepted: list[int] = []

    @settings(
        max_examples=500, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck)
    )
    @given(body=_body)
    def check(body: object) -> None:
        try:
            batch = _parse(predictor, body)
        except RequestError as err:
            assert 400 <= err.status < 500 and err.message
            return
        assert batch.x.shape == (len(batch.ids), 2) and np.isfinite(batch.x).all()
        assert len(set(batch.ids)) == len(batch.ids)
        accepted.append(len(batch.ids))

    check()
    assert len(accepted) >= 10, accepted


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(raw=st.binary(max_size=64), size=st.integers(0, 80), zoned_data=st.booleans())
def test_any_binary_body_is_a_checked_batch_or_a_request_error(
    predictor: Predictor, zoned: Predictor, raw: bytes, size: int, zoned_data: bool
) -> None:
    p = zoned if zoned_data else predictor
    header = orjson.dumps(
        {
            "inputs": [
                {"name": f, "shape": [-1 if size > 70 else size // 8], "datatype": dt,
                 "parameters": {"binary_data_size": size // 2}}
                for f, dt in zip(p.features, ("BYTES", "FP64"), strict=True)
            ]
        }
    )  # fmt: skip
    try:
        batch = v2.parse_infer(p, header + raw, p.name, None, str(len(header)), DEFAULT_ID_FIELDS)
    except RequestError as err:
        assert 400 <= err.status < 500
        return
    assert len(batch.x) == len(batch.ids)
