from __future__ import annotations

import numpy as np
import pytest

from mlrig.monitoring.quality import is_degraded, live_quality


@pytest.mark.parametrize(
    ("metric", "live", "offline", "tolerance", "mode", "degraded"),
    [
        ("rmse", 0.80, 0.72, 0.10, "relative", True),  # 11% worse
        ("rmse", 0.79, 0.72, 0.10, "relative", False),  # 9.7% worse
        ("rmse", 0.60, 0.72, 0.10, "relative", False),  # better
        ("ks", 0.40, 0.50, 0.10, "relative", True),  # higher is better
        ("ks", 0.46, 0.50, 0.10, "relative", False),
        ("r2", 0.20, 0.35, 0.10, "absolute", True),
        ("r2", 0.30, 0.35, 0.10, "absolute", False),
    ],
)
def test_degraded_is_worse_than_offline_by_more_than_the_tolerance(
    metric: str, live: float, offline: float, tolerance: float, mode: str, degraded: bool
) -> None:
    assert is_degraded(metric, live, offline, tolerance, mode) is degraded  # type: ignore[arg-type]


def test_too_few_labels_give_no_verdict_and_say_how_many() -> None:
    actual = np.full(100, np.nan)
    actual[:7] = 5.0
    q = live_quality(
        "regression", np.full(100, 5.0), None, None, actual, {"rmse": 0.7}, "rmse", 0.1,
        "relative", 30,
    )
    assert q.degraded is None and q.labelled == 7 and q.needed == 30
    assert "7 labelled predictions, 30 needed" in q.reason


def test_regression_live_metrics_use_only_labelled_rows() -> None:
    preds = np.array([5.0, 6.0, 7.0, 100.0])
    actual = np.array([5.0, 6.0, 9.0, np.nan])
    q = live_quality("regression", preds, None, None, actual, {"rmse": 0.5}, "rmse", 0.1,
                     "relative", 3)
    assert q.live == pytest.approx(np.sqrt(4 / 3)) and q.labelled == 3 and q.degraded


def test_classification_live_metrics_come_from_logged_probabilities() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 400).astype(float)
    good = np.clip(y * 0.7 + rng.normal(0.15, 0.1, 400), 0, 1)
    proba = np.column_stack([1 - good, good])
    labels = (good > 0.5).astype(float)
    q = live_quality("classification", labels, proba, ("0", "1"), y, {"ks": 0.9}, "ks", 0.1,
                     "relative", 30)
    assert q.live is not None and q.live > 0.9 and q.degraded is False
    assert {"roc_auc", "ks", "accuracy"} <= set(q.metrics)
    r = rng.random(400)
    noise = np.column_stack([1 - r, r])
    bad = live_quality("classification", labels, noise, ("0", "1"), y, {"ks": 0.9}, "ks", 0.1,
                       "relative", 30)
    assert bad.degraded is True
