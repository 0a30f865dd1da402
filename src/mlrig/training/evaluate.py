"""Metrics for both tasks and the champion gate decision: pure functions of numbers."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mlrig.errors import ConfigError

if TYPE_CHECKING:

    from mlrig.data.schema import Task

from mlrig.metrics import (  # noqa: F401  (re-exported: the gate speaks these names)
    DEFAULT_METRIC,
    LOWER_IS_BETTER,
    METRICS,
    classification_metrics,
    ks_statistic,
    regression_metrics,
)

if TYPE_CHECKING:
    from mlrig.data.schema import Task


def gate_metric(task: Task, configured: str | None) -> str:
    """The configured champion metric, checked against the task; the task's default if unset."""
    if configured is None:
        return DEFAULT_METRIC[task]
    if configured not in METRICS[task]:
        raise ConfigError(
            f"tracking.champion_metric = {configured!r} is not a {task} metric "
            f"(expected one of {', '.join(METRICS[task])})"
        )
    return configured


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
    challenger: float, champion: float | None, metric: str, margin: float = 0.0
) -> GateDecision:
    """Promote when there is no champion, or the challenger beats it by more than ``margin``.

    Both scores must come from the same evaluation rows; a NaN challenger never wins, and a
    NaN champion always loses to a real score.
    """
    if champion is None:
        return GateDecision(True, metric, challenger, None, margin, "no champion yet")
    if math.isnan(challenger):
        return GateDecision(False, metric, challenger, champion, margin, "challenger score is NaN")
    lower = metric in LOWER_IS_BETTER
    gain = champion - challenger if lower else challenger - champion
    better = math.isnan(champion) or gain > margin
    word = "lower" if lower else "higher"
    reason = (
        f"{metric} {challenger:.4f} vs champion {champion:.4f} ({word} is better, margin {margin})"
    )
    return GateDecision(better, metric, challenger, champion, margin, reason)
