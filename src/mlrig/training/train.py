"""Fit the seeds' model: scikit-learn ElasticNet on numeric features."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd
    from sklearn.linear_model import ElasticNet


@dataclass(frozen=True)
class ElasticNetSpec:
    """Hyperparameters of one ElasticNet fit."""

    alpha: float = 0.5
    l1_ratio: float = 0.5
    seed: int = 42

    def params(self) -> dict[str, Any]:
        return {
            "model": "elasticnet",
            "alpha": self.alpha,
            "l1_ratio": self.l1_ratio,
            "seed": self.seed,
        }


def fit_elasticnet(x: pd.DataFrame, y: pd.Series, spec: ElasticNetSpec) -> ElasticNet:
    """Fit on ``x`` (n_rows × n_features, float) and ``y``; deterministic for a given spec."""
    from sklearn.linear_model import ElasticNet

    model = ElasticNet(alpha=spec.alpha, l1_ratio=spec.l1_ratio, random_state=spec.seed)
    return model.fit(x, y)
