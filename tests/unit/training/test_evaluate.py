from __future__ import annotations

import math
import random

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mlrig.errors import ConfigError
from mlrig.training.evaluate import (
    LOWER_IS_BETTER,
    METRICS,
    classification_metrics,
    decide_promotion,
    gate_metric,
    ks_statistic,
    regression_metrics,
)


def test_regression_metrics_match_definitions() -> None:
    y = np.array([3.0, 5.0, 7.0, 9.0])
    p = np.array([4.0, 5.0, 6.0, 11.0])
    m = regression_metrics(y, p)
    assert m["rmse"] == pytest.approx(math.sqrt((1 + 0 + 1 + 4) / 4))
    assert m["mae"] == pytest.approx((1 + 0 + 1 + 2) / 4)
    assert m["r2"] == pytest.approx(1 - 6 / 20)


def test_first_model_is_promoted() -> None:
    d = decide_promotion(0.8, None, "rmse")
    assert d.promote and d.reason == "no champion yet"


@pytest.mark.parametrize(
    ("metric", "lower"),
    [(m, m in LOWER_IS_BETTER) for task in METRICS.values() for m in task],
)
def test_gate_never_promotes_a_model_that_is_not_better_by_the_margin(
    metric: str, lower: bool
) -> None:
    rng = random.Random(1234)
    for _ in range(2000):
        champ, chall = rng.uniform(-1, 2), rng.uniform(-1, 2)
        if rng.random() < 0.1:
            chall = champ  # ties must not promote
        margin = rng.choice([0.0, rng.uniform(0, 0.5)])
        d = decide_promotion(chall, champ, metric, margin)
        gain = champ - chall if lower else chall - champ
        assert d.promote == (gain > margin), (champ, chall, margin)


def test_nan_challenger_never_wins() -> None:
    assert not decide_promotion(float("nan"), 0.9, "rmse").promote


def test_ks_is_the_largest_gap_between_the_class_score_cdfs() -> None:
    from scipy.stats import ks_2samp

    rng = np.random.default_rng(7)
    y = rng.integers(0, 2, 500).astype(bool)
    score = rng.normal(size=500) + y * 0.8
    expected = ks_2samp(score[y], score[~y]).statistic
    assert ks_statistic(y, score) == pytest.approx(expected)


def test_classification_metrics_binary_and_multiclass() -> None:
    y = np.array([0, 0, 1, 1])
    proba = np.array([[0.9, 0.1], [0.6, 0.4], [0.3, 0.7], [0.45, 0.55]])
    m = classification_metrics(y, proba, [0, 1])
    assert m["roc_auc"] == 1.0 and m["ks"] == 1.0 and m["accuracy"] == 1.0 and m["f1"] == 1.0
    assert m["log_loss"] == pytest.approx(-np.mean(np.log([0.9, 0.6, 0.7, 0.55])))
    y3 = np.array([0, 1, 2, 2])
    p3 = np.array([[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.1, 0.2, 0.7], [0.5, 0.2, 0.3]])
    m3 = classification_metrics(y3, p3, [0, 1, 2])
    assert m3["accuracy"] == 0.75
    assert 0 < m3["roc_auc"] <= 1 and 0 < m3["ks"] <= 1


def test_gate_metric_defaults_by_task_and_refuses_the_wrong_task() -> None:
    assert gate_metric("regression", None) == "rmse"
    assert gate_metric("classification", None) == "ks"
    with pytest.raises(
        ConfigError, match=r"tracking\.champion_metric = 'rmse' is not a classification"
    ):
        gate_metric("classification", "rmse")


@given(
    metric=st.sampled_from([m for task in METRICS.values() for m in task]),
    champion=st.floats(-10, 10, allow_nan=False),
    challenger=st.floats(-10, 10, allow_nan=False),
    margin=st.floats(0, 2, allow_nan=False),
)
def test_gate_promotes_exactly_when_better_by_more_than_the_margin(
    metric: str, champion: float, challenger: float, margin: float
) -> None:
    decision = decide_promotion(challenger, champion, metric, margin)
    gain = champion - challenger if metric in LOWER_IS_BETTER else challenger - champion
    assert decision.promote == (gain > margin)
    if decision.promote:  # a promoted challenger is never worse than the champion
        assert (challenger < champion) if metric in LOWER_IS_BETTER else (challenger > champion)
