"""Regression metrics and the champion gate decision."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    import numpy.typing as npt

MetricName = Literal["rmse", "mae", "r2"]
_LOWER_IS_BETTER: dict[str, bool] = {"rmse": True, "mae": True, "r2": False}


@dataclass(frozen=True)
class RegressionMetrics:
    rmse: float
    mae: float
    r2: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def regression_metrics(y_true: npt.ArrayLike, y_pred: npt.ArrayLike) -> RegressionMetrics:
    """RMSE, MAE and R² of ``y_pred`` against ``y_true`` (same length, 1-D)."""
    from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

    return RegressionMetrics(
        rmse=math.sqrt(mean_squared_error(y_true, y_pred)),
        mae=float(mean_absolute_error(y_true, y_pred)),
        r2=float(r2_score(y_true, y_pred)),
    )


@dataclass(frozen=True)
class GateDecision:
    """Whether a challenger replaces the champion, with the numbers that decided it."""

    promote: bool
    metric: str
    challenger: float
    champion: float | None
    margin: float
    reason: str


def decide_promotion(
    challenger: float, champion: float | None, metric: MetricName, margin: float = 0.0
) -> GateDecision:
    """Promote when there is no champion, or the challenger beats it by more than ``margin``.

    Both scores must come from the same held-out rows; a NaN score never wins.
    """
    if champion is None:
        return GateDecision(True, metric, challenger, None, margin, "no champion yet")
    if math.isnan(challenger):
        return GateDecision(False, metric, challenger, champion, margin, "challenger score is NaN")
    gain = champion - challenger if _LOWER_IS_BETTER[metric] else challenger - champion
    better = gain > margin or (math.isnan(champion))
    word = "lower" if _LOWER_IS_BETTER[metric] else "higher"
    reason = (
        f"{metric} {challenger:.4f} vs champion {champion:.4f} ({word} is better, margin {margin})"
    )
    return GateDecision(better, metric, challenger, champion, margin, reason)
