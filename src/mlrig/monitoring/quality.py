"""Live quality: the served model's metrics on the predictions that got feedback, against the
same metric on its evaluation set (offline), and whether it has degraded."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from mlrig.metrics import LOWER_IS_BETTER, classification_metrics, regression_metrics

if TYPE_CHECKING:
    import numpy as np

ToleranceMode = Literal["relative", "absolute"]


@dataclass(frozen=True)
class LiveQuality:
    """``degraded`` is None when there were too few labelled rows to say."""

    metric: str
    labelled: int
    needed: int
    live: float | None
    offline: float | None
    degraded: bool | None
    reason: str
    metrics: dict[str, float] = field(default_factory=dict)


def is_degraded(
    metric: str, live: float, offline: float, tolerance: float, mode: ToleranceMode
) -> bool:
    """True when ``live`` is worse than ``offline`` by more than ``tolerance`` (a fraction of
    the offline value when ``mode`` is relative, metric units when absolute)."""
    if math.isnan(live):
        return False
    worse_by = live - offline if metric in LOWER_IS_BETTER else offline - live
    allowed = tolerance * abs(offline) if mode == "relative" else tolerance
    return worse_by > allowed


def live_quality(
    task: str,
    predictions: np.ndarray,
    probabilities: np.ndarray | None,
    classes: tuple[str, ...] | None,
    actual: np.ndarray,
    offline: dict[str, float],
    metric: str,
    tolerance: float,
    mode: ToleranceMode,
    min_labels: int,
) -> LiveQuality:
    """Metrics on the rows where ``actual`` is not NaN; a verdict only with ``min_labels``."""
    import numpy as np

    labelled = ~np.isnan(actual)
    n = int(labelled.sum())
    reference = offline.get(metric)
    if n < min_labels:
        return LiveQuality(
            metric,
            n,
            min_labels,
            None,
            reference,
            None,
            f"{n} labelled predictions, {min_labels} needed",
        )
    y = actual[labelled]
    if task == "classification":
        if probabilities is None or classes is None:
            return LiveQuality(
                metric,
                n,
                min_labels,
                None,
                reference,
                None,
                "the log holds no class probabilities for these predictions",
            )
        labels = np.asarray([float(c) for c in classes])
        scores = classification_metrics(y, probabilities[labelled], labels)
    else:
        scores = regression_metrics(y, predictions[labelled])
    live = scores[metric]
    if reference is None:
        return LiveQuality(
            metric, n, min_labels, live, None, None, "no offline metric recorded", scores
        )
    bad = is_degraded(metric, live, reference, tolerance, mode)
    unit = f"{tolerance:.0%} of offline" if mode == "relative" else f"{tolerance:g}"
    word = "degraded" if bad else "within tolerance"
    reason = f"live {metric} {live:.4f} vs offline {reference:.4f}: {word} (tolerance {unit})"
    return LiveQuality(metric, n, min_labels, live, reference, bad, reason, scores)
