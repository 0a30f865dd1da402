from __future__ import annotations

import math
import random

import numpy as np
import pytest

from mlrig.training.evaluate import decide_promotion, regression_metrics


def test_regression_metrics_match_definitions() -> None:
    y = np.array([3.0, 5.0, 7.0, 9.0])
    p = np.array([4.0, 5.0, 6.0, 11.0])
    m = regression_metrics(y, p)
    assert m.rmse == pytest.approx(math.sqrt((1 + 0 + 1 + 4) / 4))
    assert m.mae == pytest.approx((1 + 0 + 1 + 2) / 4)
    assert m.r2 == pytest.approx(1 - 6 / 20)


def test_first_model_is_promoted() -> None:
    d = decide_promotion(0.8, None, "rmse")
    assert d.promote and d.reason == "no champion yet"


@pytest.mark.parametrize(("metric", "lower"), [("rmse", True), ("mae", True), ("r2", False)])
def test_gate_never_promotes_a_model_that_is_not_better_by_the_margin(
    metric: str, lower: bool
) -> None:
    rng = random.Random(1234)
    for _ in range(2000):
        champ, chall = rng.uniform(-1, 2), rng.uniform(-1, 2)
        if rng.random() < 0.1:
            chall = champ  # ties must not promote
        margin = rng.choice([0.0, rng.uniform(0, 0.5)])
        d = decide_promotion(chall, champ, metric, margin)  # type: ignore[arg-type]
        gain = champ - chall if lower else chall - champ
        assert d.promote == (gain > margin), (champ, chall, margin)


def test_nan_challenger_never_wins() -> None:
    assert not decide_promotion(float("nan"), 0.9, "rmse").promote
