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
    split_recent,
    training_rows,
)
from mlrig.training.evaluate import FROZEN, RECENT, GateDecision, SetScores


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
    d = gate_decision(_frozen(0.1, None), ChampionScore("3", None, note), "rmse", 0.0)
    assert (d.promote, d.challenger, d.champion, d.reason) == (False, 0.1, None, note)


def test_no_champion_means_promotion() -> None:
    d = gate_decision(_frozen(0.7, None), ChampionScore(None, None, "x"), "rmse", 0.05)
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
    d = gate_decision(_frozen(challenger, champion), _scored(champion), metric, 0.0)
    assert d.promote is promote
    assert d.champion == champion and d.challenger == challenger and "vs champion" in d.reason


def test_margin_keeps_a_barely_better_challenger_out() -> None:
    d = gate_decision(_frozen(0.69, 0.70), _scored(0.70), "rmse", 0.05)
    assert not d.promote


def _frozen(challenger: float, champion: float | None, rows: int = 400) -> list[SetScores]:
    return [SetScores(FROZEN, rows, challenger, champion)]


def _scored(frozen: float, recent: float | None = None) -> ChampionScore:
    return ChampionScore("1", frozen, "scored", recent)


# After drift: the challenger loses on the frozen (old population) set, wins on the recent one.
DRIFTED = [SetScores(FROZEN, 400, 0.70, 0.65), SetScores(RECENT, 300, 0.72, 0.95)]


@pytest.mark.parametrize(
    ("rule", "min_recent", "governs", "promote"),
    [
        ("auto", 100, RECENT, True),  # enough recent rows: the new population decides
        ("auto", 301, FROZEN, False),  # too few: the frozen set decides
        ("frozen", 1, FROZEN, False),
        ("recent", 10_000, RECENT, True),  # forced, whatever the count
        (None, 1, FROZEN, False),  # a plain run: no slice to trust
    ],
)
def test_the_rule_picks_the_set_that_decides_and_every_set_is_reported(
    rule: str | None, min_recent: int, governs: str, promote: bool
) -> None:
    d = gate_decision(DRIFTED, _scored(0.65, 0.95), "rmse", 0.0, rule, min_recent)
    assert (d.governed_by, d.promote) == (governs, promote)
    assert d.sets == tuple(DRIFTED)
    assert governs in d.reason and d.rule


def test_a_worse_challenger_on_the_recent_slice_is_kept_out_even_if_it_wins_frozen() -> None:
    sets = [SetScores(FROZEN, 400, 0.60, 0.65), SetScores(RECENT, 300, 0.99, 0.80)]
    d = gate_decision(sets, _scored(0.65, 0.80), "rmse", 0.0, "auto", 100)
    assert not d.promote and d.governed_by == RECENT
    assert (d.challenger, d.champion) == (0.99, 0.80)


def test_an_empty_recent_slice_under_gate_recent_keeps_the_champion() -> None:
    d = gate_decision(_frozen(0.1, 0.9), _scored(0.9), "rmse", 0.0, "recent", 100)
    assert not d.promote and "no rows" in d.reason


def test_gate_sets_round_trip_through_tags() -> None:
    from mlrig.tracking.tags import decode_gate

    d = gate_decision(DRIFTED, _scored(0.65, 0.95), "rmse", 0.0, "auto", 100)
    back = decode_gate(decision_tags(d))
    assert back is not None and back.governed_by == RECENT and back.rule == d.rule
    assert [s["name"] for s in back.sets] == [FROZEN, RECENT]
    assert back.sets[1]["champion"] == pytest.approx(0.95)


def test_split_recent_holds_out_the_newest_rows_and_their_copies() -> None:
    frame = pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0, 2.0, 6.0], "y": [1.0, 2, 3, 4, 2, 6]})
    older, recent = split_recent(frame, 0.34)
    assert recent["x"].tolist() == [2.0, 6.0]  # the newest two
    assert older["x"].tolist() == [1.0, 3.0, 4.0]  # the older copy of (2, 2) cannot train
    none_older, none_recent = split_recent(frame, 0.0)
    assert len(none_older) == 6 and none_recent.empty


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
        "mlrig.gate.governed_by": "frozen",
        "mlrig.gate.rule": "",
        "mlrig.gate.sets": "[]",
    }


def test_decision_tags_of_a_first_model_leave_the_champion_empty() -> None:
    d = GateDecision(True, "ks", math.nan, None, 0.0, "no champion yet")
    tags = decision_tags(d)
    assert tags["mlrig.gate.promote"] == "true" and tags["mlrig.gate.champion"] == ""
    assert tags["mlrig.gate.challenger"] == "nan" and tags["mlrig.gate.margin"] == "0"
