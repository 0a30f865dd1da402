"""The feature contract: which columns a model takes, in which order, which are categorical,
its target and its task."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Task = Literal["regression", "classification"]


@dataclass(frozen=True)
class FeatureSchema:
    """Ordered feature names (numeric unless in ``categorical``) plus the target and task."""

    features: tuple[str, ...]
    target: str
    categorical: tuple[str, ...] = ()
    task: Task = "regression"

    @property
    def numeric(self) -> tuple[str, ...]:
        return tuple(f for f in self.features if f not in self.categorical)
