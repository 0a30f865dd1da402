"""Batch scoring's pure core on real (tiny) fitted scikit-learn models: an Arrow chunk in,
the server's validation, the output table and the log record out."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from sklearn.linear_model import LinearRegression, LogisticRegression

from mlrig.serving.batch_scoring import BadCell, BadColumns, ChunkScorer, frame_table
from mlrig.serving.predictor import Predictor
from mlrig.tracking.loading import LoadedModel

FEATURES = ("x1", "x2")
IDS = ("id", "*_id")


@pytest.fixture
def predictor() -> Predictor:
    frame = pd.DataFrame({"x1": [0.0, 1.0, 2.0, 3.0], "x2": [1.0, 0.0, 1.0, 0.0]})
    model = LinearRegression().fit(frame, 2 * frame["x1"] + 10 * frame["x2"])
    return Predictor(LoadedModel(model, "m", "3", None, FEATURES), max_rows=3)


def _chunk(**columns: list[object]) -> pa.Table:
    return pa.table(columns)


def test_scores_in_the_models_feature_order_and_keeps_the_id_column(predictor: Predictor) -> None:
    table = _chunk(ride_id=["r1", "r2"], x2=[1.0, 0.0], x1=[1, 3])  # columns in another order
    scorer = ChunkScorer(predictor, table.column_names, IDS)
    scored = scorer.score(table)
    assert scored.table.column_names == ["ride_id", "prediction"]
    assert scored.table["ride_id"].to_pylist() == ["r1", "r2"]
    np.testing.assert_allclose(scored.table["prediction"].to_numpy(), [12.0, 6.0], atol=1e-9)
    assert scored.batch is None  # nothing for the log unless asked


def test_the_log_record_carries_client_ids_features_and_the_batch_endpoint(
    predictor: Predictor,
) -> None:
    table = _chunk(id=[7, 8], x1=[1.0, 3.0], x2=[1.0, 0.0])
    scored = ChunkScorer(predictor, table.column_names, IDS, log=True).score(table)
    record = scored.batch
    assert record is not None
    assert record.ids == ["7", "8"] and record.client_ids
    assert record.endpoint == "batch" and (record.model_name, record.model_version) == ("m", "3")
    np.testing.assert_array_equal(record.x, [[1.0, 1.0], [3.0, 0.0]])
    np.testing.assert_allclose(record.predictions, scored.table["prediction"].to_numpy())


def test_without_an_id_column_logging_adds_the_generated_ids(predictor: Predictor) -> None:
    table = _chunk(x1=[1.0, 3.0], x2=[1.0, 0.0])
    scored = ChunkScorer(predictor, table.column_names, IDS, log=True).score(table)
    assert scored.batch is not None and not scored.batch.client_ids
    assert scored.table["id"].to_pylist() == scored.batch.ids
    assert scored.batch.ids[1] == f"{scored.batch.batch_id}-1"
    # without logging there is nothing to refer to: no id column is made up
    plain = ChunkScorer(predictor, table.column_names, IDS).score(table)
    assert plain.table.column_names == ["prediction"]


@pytest.mark.parametrize(
    ("columns", "keep", "message"),
    [
        (["x1"], (), r"missing feature column\(s\) 'x2'"),
        (["x1", "x2", "quality"], (), r"unknown column\(s\) 'quality'.*--keep"),
        (["x1", "x2", "id", "ride_id"], (), "two fields could be the id: 'id' and 'ride_id'"),
        (["x1", "x2", "x1"], (), r"duplicated column name\(s\) 'x1'"),
        (["x1", "x2"], ("note",), r"--keep column\(s\) 'note' not in the table"),
    ],
)
def test_columns_that_do_not_fit_the_model_are_refused_by_name(
    predictor: Predictor, columns: list[str], keep: tuple[str, ...], message: str
) -> None:
    with pytest.raises(BadColumns, match=message):
        ChunkScorer(predictor, columns, IDS, keep)


def test_kept_columns_are_copied_to_the_output(predictor: Predictor) -> None:
    table = _chunk(x1=[1.0], x2=[0.0], quality=[5])
    scored = ChunkScorer(predictor, table.column_names, IDS, ("quality",)).score(table)
    assert scored.table.column_names == ["quality", "prediction"]
    assert scored.table["quality"].to_pylist() == [5]


@pytest.mark.parametrize(
    ("x1", "row", "message"),
    [
        ([1.0, float("nan")], 1, "must be a finite number, got nan"),
        ([float("-inf"), 1.0], 0, "must be a finite number, got -inf"),
        ([1.0, 2.0, 1e101], 2, "must be between -1e\\+100 and 1e\\+100, got 1e\\+101"),
        ([1.0, None], 1, r"no value \(empty, null or NaN\), expected a number"),
        (["7.4", "1"], 0, 'must be a number, got str "7.4"'),
        ([True, False], None, "must hold numbers, the column is bool"),
    ],
)
def test_bad_values_are_named_by_row_and_column(
    predictor: Predictor, x1: list[object], row: int | None, message: str
) -> None:
    table = _chunk(x1=x1, x2=[0.0] * len(x1))
    with pytest.raises(BadCell, match=message) as caught:
        ChunkScorer(predictor, table.column_names, IDS).score(table)
    assert (caught.value.row, caught.value.column) == (row, "x1")


@pytest.mark.parametrize(
    ("ids", "row", "message"),
    [
        (["a", "b", "a"], 2, "duplicate id 'a'"),
        (["a", ""], 1, "an empty id"),
        (["a", "x" * 129], 1, "an id over 128 characters"),
        (["a\x00b"], 0, "an id with control characters"),
        ([1, 2**53], 1, "beyond"),
        (["a", None], 1, "no value"),
    ],
)
def test_ids_follow_the_client_id_rule_when_logged(
    predictor: Predictor, ids: list[object], row: int, message: str
) -> None:
    table = _chunk(id=ids, x1=[1.0] * len(ids), x2=[0.0] * len(ids))
    with pytest.raises(BadCell, match=message) as caught:
        ChunkScorer(predictor, table.column_names, IDS, log=True).score(table)
    assert (caught.value.row, caught.value.column) == (row, "id")
    # not logged: the id column is only copied through
    out = ChunkScorer(predictor, table.column_names, IDS).score(table).table
    assert out["id"].to_pylist() == ids


def test_chunks_score_the_same_as_the_whole_table(predictor: Predictor) -> None:
    rng = np.random.default_rng(0)
    table = pa.table({"x1": rng.normal(size=1000), "x2": rng.normal(size=1000)})
    scorer = ChunkScorer(predictor, table.column_names, IDS)
    whole = scorer.score(table).table["prediction"].to_numpy()
    parts = [
        scorer.score(b).table["prediction"].to_numpy() for b in table.to_batches(max_chunksize=64)
    ]
    np.testing.assert_array_equal(np.concatenate(parts), whole)


def test_categories_take_text_or_whole_numbers_like_the_server() -> None:
    from mlrig.data.schema import FeatureSchema
    from mlrig.training.train import ModelSpec, fit_model

    frame = pd.DataFrame({"zone": ["132", "7", "132", "48"] * 5, "km": [1.0, 2.0, 3.0, 4.0] * 5})
    y = frame["km"] * 2 + (frame["zone"] == "132") * 5
    schema = FeatureSchema(("zone", "km"), "y", ("zone",))
    model = fit_model(frame, y, schema, ModelSpec("ridge", {"alpha": 0.01}))
    p = Predictor(LoadedModel(model, "taxi", "1", None, ("zone", "km"), ("zone",)), max_rows=10)
    texts = pa.table({"zone": ["132", "7"], "km": [1.0, 2.0]})
    ints = pa.table({"zone": [132, 7], "km": [1, 2]})
    floats = pa.table({"zone": [132.0, 7.0], "km": [1.0, 2.0]})
    scorer = ChunkScorer(p, ["zone", "km"], IDS)
    x = scorer.matrix(ints)
    assert x.dtype == object and x[0, 0] == "132" and x[0, 1] == 1.0
    expected = scorer.score(texts).table["prediction"].to_numpy()
    for table in (ints, floats):
        np.testing.assert_allclose(scorer.score(table).table["prediction"].to_numpy(), expected)
    with pytest.raises(BadCell, match=r"whole number, got float 7\.5") as caught:
        scorer.score(pa.table({"zone": [132.0, 7.5], "km": [1.0, 2.0]}))
    assert (caught.value.row, caught.value.column) == (1, "zone")


def test_a_binary_classifier_gives_the_positive_class_probability() -> None:
    frame = pd.DataFrame({"x1": [0.0, 1.0, 2.0, 3.0], "x2": [1.0, 0.0, 1.0, 0.0]})
    model = LogisticRegression().fit(frame, [0, 0, 1, 1])
    p = Predictor(LoadedModel(model, "m", "1", None, FEATURES, task="classification"), 10)
    table = pa.table({"x1": [0.0, 3.0], "x2": [1.0, 0.0]})
    out = ChunkScorer(p, FEATURES, IDS).score(table).table
    assert out.column_names == ["prediction", "probability"]
    assert out["prediction"].type == pa.int64() and out["prediction"].to_pylist() == [0, 1]
    np.testing.assert_allclose(
        out["probability"].to_numpy(), model.predict_proba(frame.iloc[[0, 3]].to_numpy())[:, 1]
    )


def test_a_multiclass_classifier_gives_one_probability_column_per_class() -> None:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(90, 2)), columns=list(FEATURES))
    y = np.repeat([3, 5, 8], 30)
    frame["x1"] += y
    model = LogisticRegression().fit(frame, y)
    p = Predictor(LoadedModel(model, "m", "1", None, FEATURES, task="classification"), 100)
    out = ChunkScorer(p, FEATURES, IDS).score(pa.Table.from_pandas(frame)).table
    names = ["probability_3", "probability_5", "probability_8"]
    assert out.column_names == ["prediction", *names]
    proba = np.column_stack([out[n].to_numpy() for n in names])
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert out["prediction"].to_pylist() == [[3, 5, 8][i] for i in proba.argmax(axis=1)]


def test_a_frame_column_mixing_numbers_and_text_is_named_by_row() -> None:
    frame = pd.DataFrame({"x1": [1.0, 2.0, "x"], "x2": [0.0, 0.0, 0.0]})
    with pytest.raises(BadCell, match='mixes float and str values: str "x"') as caught:
        frame_table(frame)
    assert (caught.value.row, caught.value.column) == (2, "x1")
