"""The pipeline's pure rules: training rows, the stored evaluation set, the gate's inputs, the
model spec and the decision tags. No MLflow store."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from mlrig.config import TrainSettings
from mlrig.errors import ConfigError
from mlrig.pipeline.results import ChampionScore
from mlrig.pipeline.rules import (
    compatible,
    decision_tags,
    digest,
    gate_decision,
    model_spec,
    training_rows,
)
from mlrig.training.evaluate import GateDecision


def _frame() -> pd.DataFrame:
    return pd.DataFrame(
        {"x": [1.0, 2.0, 3.0, 2.0, 4.0, 2.0], "zone": list("abcbdb"), "y": [0, 1, 0, 1, 1, 1]}
    )


def test_training_rows_drop_every_copy_of_an_evaluation_row() -> None:
    frame = _frame()  # the row (2.0, "b", 1) appears three times
    evaluation = frame.iloc[[1]]
    train = training_rows(frame, evaluation)
    assert list(train.index) == [0, 2, 4]
    assert not ((train["x"] == 2.0) & (train["zone"] == "b")).any()


def test_training_rows_ignore_the_index_of_the_evaluation_rows() -> None:
    frame = _frame()
    evaluation = frame.iloc[[0, 4]].reset_index(drop=True)  # as read back from Parquet
    assert list(training_rows(frame, evaluation).index) == [1, 2, 3, 5]


def test_training_rows_keep_everything_when_no_row_matches() -> None:
    frame = _frame()
    other = pd.DataFrame({"x": [9.0], "zone": ["z"], "y": [0]})
    assert training_rows(frame, other).equals(frame)


def test_stored_set_with_the_same_columns_is_typed_like_the_data() -> None:
    current = _frame()
    stored = pd.DataFrame({"x": [1, 5], "zone": ["a", "q"], "y": [0.0, 1.0]})
    typed = compatible(stored, current)
    assert typed is not None
    assert typed.dtypes.to_dict() == current.dtypes.to_dict()
    assert typed["x"].tolist() == [1.0, 5.0] and typed["y"].tolist() == [0, 1]


@pytest.mark.parametrize(
    "stored",
    [
        pd.DataFrame({"x": [1.0], "zone": ["a"]}),  # a column missing
        pd.DataFrame({"x": [1.0], "zone": ["a"], "y": [0], "extra": [1]}),  # one more
        pd.DataFrame({"zone": ["a"], "x": [1.0], "y": [0]}),  # another order
    ],
    ids=["missing", "extra", "order"],
)
def test_stored_set_with_other_columns_is_incompatible(stored: pd.DataFrame) -> None:
    assert compatible(stored, _frame()) is None


def test_stored_set_whose_values_cannot_be_cast_is_incompatible() -> None:
    stored = pd.DataFrame({"x": ["not a number"], "zone": ["a"], "y": [0]})
    assert compatible(stored, _frame()) is None


def test_digest_is_stable_and_names_the_rows_in_order() -> None:
    frame = _frame()
    assert digest(frame) == digest(frame.copy()) == digest(frame.reset_index(drop=True))
    assert len(digest(frame)) == 16 and int(digest(frame), 16) >= 0
    assert digest(frame) == digest(frame.set_axis(range(10, 16)))  # the index does not count
    assert digest(frame) != digest(frame.iloc[::-1])
    assert digest(frame) != digest(frame.assign(x=frame["x"] + 1))


def test_unscorable_champion_is_never_replaced_and_the_note_is_the_reason() -> None:
    note = "champion was trained on different feature columns"
    d = gate_decision(0.1, ChampionScore("3", None, note), "rmse", 0.0)
    assert d == GateDecision(False, "rmse", 0.1, None, 0.0, note)


def test_no_champion_means_promotion() -> None:
    d = gate_decision(0.7, ChampionScore(None, None, "no champion yet"), "rmse", 0.05)
    assert d.promote and d.champion is None and d.reason == "no champion yet"
    assert d.margin == 0.05


@pytest.mark.parametrize(
    ("metric", "challenger", "champion", "promote"),
    [
        ("rmse", 0.60, 0.70, True),  # lower is better
        ("rmse", 0.70, 0.60, False),
        ("ks", 0.50, 0.40, True),  # higher is better
        ("ks", 0.40, 0.50, False),
    ],
)
def test_scored_champion_is_compared(
    metric: str, challenger: float, champion: float, promote: bool
) -> None:
    d = gate_decision(challenger, ChampionScore("1", champion, "scored"), metric, 0.0)
    assert d.promote is promote
    assert d.champion == champion and d.challenger == challenger and "vs champion" in d.reason


def test_margin_keeps_a_barely_better_challenger_out() -> None:
    d = gate_decision(0.69, ChampionScore("1", 0.70, "scored"), "rmse", 0.05)
    assert not d.promote


def test_model_spec_defaults_per_task() -> None:
    assert model_spec(TrainSettings(), "regression").family == "elasticnet"
    assert model_spec(TrainSettings(), "classification").family == "logistic"
    spec = model_spec(TrainSettings(seed=7), "regression")
    assert spec.params == {"alpha": 0.5, "l1_ratio": 0.5} and spec.seed == 7


def test_model_spec_shorthands_apply_only_where_the_family_has_them() -> None:
    en = model_spec(TrainSettings(alpha=0.3, l1_ratio=0.2), "regression")
    assert en.params == {"alpha": 0.3, "l1_ratio": 0.2}
    ridge = model_spec(TrainSettings(model="ridge", alpha=0.3, l1_ratio=0.2), "regression")
    assert ridge.params == {"alpha": 0.3}  # ridge has no l1_ratio: the shorthand is ignored
    logistic = model_spec(TrainSettings(alpha=0.3), "classification")
    assert "alpha" not in logistic.params


def test_model_spec_params_override_the_shorthands() -> None:
    spec = model_spec(TrainSettings(alpha=0.3, params={"alpha": 0.9}), "regression")
    assert spec.params["alpha"] == 0.9 and spec.params["l1_ratio"] == 0.5


def test_model_spec_refuses_unknown_parameters_and_the_wrong_task() -> None:
    with pytest.raises(ConfigError, match="'depth' not a parameter of elasticnet"):
        model_spec(TrainSettings(params={"depth": 3}), "regression")
    with pytest.raises(ConfigError, match="cannot do classification"):
        model_spec(TrainSettings(model="ridge"), "classification")


def test_decision_tags_spell_the_decision_as_text() -> None:
    d = GateDecision(False, "rmse", 0.6123456789, 0.6, 0.01, "rmse 0.6123 vs champion 0.6000")
    assert decision_tags(d) == {
        "mlrig.gate.promote": "false",
        "mlrig.gate.metric": "rmse",
        "mlrig.gate.challenger": "0.612346",
        "mlrig.gate.champion": "0.6",
        "mlrig.gate.margin": "0.01",
        "mlrig.gate.reason": "rmse 0.6123 vs champion 0.6000",
    }


def test_decision_tags_of_a_first_model_leave_the_champion_empty() -> None:
    d = GateDecision(True, "ks", math.nan, None, 0.0, "no champion yet")
    tags = decision_tags(d)
    assert tags["mlrig.gate.promote"] == "true" and tags["mlrig.gate.champion"] == ""
    assert tags["mlrig.gate.challenger"] == "nan" and tags["mlrig.gate.margin"] == "0"
