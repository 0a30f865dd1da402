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
class SetScores:
    """Both models' gate metric on one set of rows (``champion`` None: none to score)."""

    name: str  # frozen | recent
    rows: int
    challenger: float
    champion: float | None


FROZEN, RECENT = "frozen", "recent"


@dataclass(frozen=True)
class GateDecision:
    """Whether a challenger replaces the champion, with the numbers that decided it.

    ``challenger``/``champion`` are the scores on the set that governed (``governed_by``);
    ``sets`` holds every set both were scored on, and ``rule`` says why that one governed."""

    promote: bool
    metric: str
    challenger: float
    champion: float | None
    margin: float
    reason: str
    governed_by: str = FROZEN
    rule: str = ""
    sets: tuple[SetScores, ...] = ()


def governing_set(rule: str | None, recent_rows: int, min_recent: int) -> tuple[str, str]:
    """Which rows decide the gate, and the sentence that says why (``rule`` None: a plain
    run, which has no production slice).

    After the population moves, the frozen evaluation set (drawn from the training source)
    stops representing the traffic; the newest labelled production rows do. ``auto`` trusts
    them once there are ``min_recent`` of them, since a small slice is a noisy judge.
    """
    if rule is None:
        return FROZEN, "not a retrain (no production slice): the frozen evaluation set decides"
    if rule == FROZEN:
        return FROZEN, "gate = frozen: the frozen evaluation set decides"
    if rule == RECENT:
        return RECENT, f"gate = recent: the recent production slice decides ({recent_rows} rows)"
    if recent_rows >= min_recent:
        return RECENT, (
            f"gate = auto: the recent production slice has {recent_rows} labelled rows "
            f"(>= {min_recent}), so it decides"
        )
    return FROZEN, (
        f"gate = auto: the recent production slice has {recent_rows} labelled rows "
        f"(< {min_recent}), so the frozen evaluation set decides"
    )


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
