"""The feature contract: which columns a model takes, in which order, and its target."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class FeatureSchema:
    """Ordered numeric feature names plus the target; shared by training and serving."""

    features: tuple[str, ...]
    target: str

    @classmethod
    def from_columns(cls, columns: Sequence[str], target: str) -> FeatureSchema:
        """Every column but the target, in file order."""
        return cls(tuple(c for c in columns if c != target), target)
