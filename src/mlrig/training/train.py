"""Build and fit a model: a scikit-learn Pipeline that encodes raw records itself.

Categorical features are one-hot encoded inside the Pipeline (unknown categories ignored), so
the logged model takes the same raw columns the data file had, and serving needs no
preprocessing of its own. Columns are selected by position, so the Pipeline accepts a
DataFrame in training and a plain NumPy array when serving.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mlrig.data.schema import FeatureSchema
from mlrig.training.families import FAMILIES, Params

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    from sklearn.pipeline import Pipeline


@dataclass(frozen=True)
class ModelSpec:
    """Family, resolved hyperparameters and seed of one fit."""

    family: str
    params: Params = field(default_factory=dict)
    seed: int = 42

    def as_params(self) -> dict[str, Any]:
        return {"model": self.family, **self.params, "seed": self.seed}


def build_pipeline(schema: FeatureSchema, spec: ModelSpec) -> Pipeline:
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    fam = FAMILIES[spec.family]
    position = {f: i for i, f in enumerate(schema.features)}
    parts: list[tuple[str, Any, list[int]]] = []
    if schema.categorical:
        encoder = OneHotEncoder(handle_unknown="ignore", sparse_output=not fam.dense)
        parts.append(("categorical", encoder, [position[c] for c in schema.categorical]))
    if schema.numeric:
        scale = StandardScaler() if fam.linear else "passthrough"
        parts.append(("numeric", scale, [position[c] for c in schema.numeric]))
    prep = ColumnTransformer(parts, sparse_threshold=0.0 if fam.dense else 0.3)
    estimator = fam.make(schema.task, dict(spec.params), spec.seed)
    return Pipeline([("prepare", prep), ("model", estimator)])


def fit_model(x: pd.DataFrame, y: pd.Series, schema: FeatureSchema, spec: ModelSpec) -> Pipeline:
    """Fit on ``x`` (the schema's feature columns, in order) and ``y``; deterministic per spec."""
    return build_pipeline(schema, spec).fit(x, y)


def score_model(model: Any, x: Any, y: Any, task: str) -> dict[str, float]:
    """Every metric of ``task`` for ``model`` on (``x``, ``y``)."""
    from mlrig.training.evaluate import classification_metrics, regression_metrics

    if task == "classification":
        return classification_metrics(y, model.predict_proba(x), model.classes_)
    return regression_metrics(y, model.predict(x))


def importances(model: Any) -> tuple[list[str], np.ndarray, str] | None:
    """Per-input-column weights of a fitted Pipeline: (names, values, kind) or None."""
    import numpy as np

    estimator = model.steps[-1][1]
    names = [str(n).split("__", 1)[-1] for n in model[:-1].get_feature_names_out()]
    if hasattr(estimator, "feature_importances_"):
        return names, np.asarray(estimator.feature_importances_), "importance"
    if hasattr(estimator, "coef_"):
        coef = np.asarray(estimator.coef_)
        values = coef if coef.ndim == 1 else np.abs(coef).mean(axis=0)
        return names, values, "coefficients" if coef.ndim == 1 else "mean |coefficient|"
    return None
