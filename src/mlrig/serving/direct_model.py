"""The fitted Pipeline's arithmetic without scikit-learn's per-call overhead.

Measured on a 2-vCPU VM (2026-11-24): ``Pipeline.predict`` on one row of the wine model
(ColumnTransformer → StandardScaler → ElasticNet) took ≈930 µs, of which ≈640 µs was the
ColumnTransformer's bookkeeping (input checks, narwhals dataframe detection, joblib) and ≈180 µs
each the scaler's and the estimator's input validation; the arithmetic itself is ≈9 µs. The
server has already validated its matrix (width, dtype, finite, bounded), so those checks buy
nothing per request.

``direct_method`` rebuilds the same computation for the shapes mlrig trains (training/train.py:
a ColumnTransformer of StandardScaler / passthrough parts in front of one estimator): the column
step in NumPy (the scaler's own ``X -= mean_; X /= scale_``), a linear regressor as its own
``X @ coef_ + intercept_``, any other final estimator called directly. It is used only when it
reproduces the Pipeline's output on probe rows at load; anything else (categorical encoders,
unknown steps) keeps the Pipeline. ONNX Runtime was the ecosystem alternative: it converts to
float32 by default and adds a 50 MB dependency for what is a handful of array operations here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

Method = Callable[[np.ndarray], np.ndarray]
_Part = tuple[list[int], np.ndarray | None, np.ndarray | None]  # columns, mean, scale


def direct_method(model: Any, method: str, n_features: int) -> Method | None:
    """``model.<method>`` (``predict`` or ``predict_proba``) for float64 (n, ``n_features``)
    matrices, or None when ``model`` is not a shape this module knows or the direct call does
    not match the model's own output on probe rows."""
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline

    if type(model) is not Pipeline or len(model.steps) != 2:
        return None
    prep, final = model.steps[0][1], model.steps[1][1]
    if type(prep) is not ColumnTransformer:
        return None
    transform = _column_step(prep, n_features)
    if transform is None or not hasattr(final, method):
        return None
    head = _linear_head(final) if method == "predict" else None
    call: Method = getattr(final, method) if head is None else head

    def direct(x: np.ndarray) -> np.ndarray:
        return call(transform(x))

    return direct if _same(model, method, direct, n_features) else None


def _column_step(prep: Any, n_features: int) -> Method | None:
    from sklearn.preprocessing import FunctionTransformer, StandardScaler

    parts: list[_Part] = []
    for _name, trans, cols in prep.transformers_:
        if not isinstance(cols, list) or not all(type(c) is int for c in cols):
            return None  # column names or masks: never produced by training, not handled here
        if (isinstance(trans, str) and trans == "drop") or not cols:
            continue
        if (isinstance(trans, str) and trans == "passthrough") or (
            type(trans) is FunctionTransformer and trans.func is None  # fitted "passthrough"
        ):
            parts.append((cols, None, None))
        elif type(trans) is StandardScaler:
            mean = trans.mean_ if trans.with_mean else None
            scale = trans.scale_ if trans.with_std else None
            parts.append((cols, mean, scale))
        else:
            return None
    if not parts or any(c >= n_features for cols, _m, _s in parts for c in cols):
        return None
    every = list(range(n_features))
    if len(parts) == 1 and parts[0][0] == every and parts[0][1] is None and parts[0][2] is None:
        return _identity

    def transform(x: np.ndarray) -> np.ndarray:
        out = []
        for cols, mean, scale in parts:
            part = x[:, cols]  # a copy, as the scaler's own copy=True
            if mean is not None:
                part -= mean
            if scale is not None:
                part /= scale
            out.append(part)
        return out[0] if len(out) == 1 else np.hstack(out)

    return transform


def _identity(x: np.ndarray) -> np.ndarray:
    return x


def _linear_head(final: Any) -> Method | None:
    """A dense linear regressor's own ``_decision_function``: ``X @ coef_ + intercept_``."""
    from sklearn.linear_model import ElasticNet, Lasso, LinearRegression, Ridge

    if type(final) not in (ElasticNet, Lasso, LinearRegression, Ridge):
        return None
    coef = getattr(final, "coef_", None)
    if not isinstance(coef, np.ndarray) or coef.ndim != 1:
        return None
    intercept = final.intercept_

    def linear(x: np.ndarray) -> np.ndarray:
        return x @ coef + intercept

    return linear


def _same(model: Any, method: str, direct: Method, n_features: int) -> bool:
    """Whether ``direct`` answers as the model does on a few rows (zeros, ones, spread
    values, one row alone and several together)."""
    rng = np.random.default_rng(0)
    probe = np.vstack(
        [np.zeros(n_features), np.ones(n_features), rng.normal(0, 50, (6, n_features))]
    )
    try:
        for rows in (probe[:1], probe[2:3], probe):
            want = np.asarray(getattr(model, method)(rows), dtype=np.float64)
            got = np.asarray(direct(rows.copy()), dtype=np.float64)
            if want.shape != got.shape or not np.allclose(got, want, rtol=1e-12, atol=1e-12):
                return False
    except Exception:  # the model cannot predict its probe: keep the Pipeline, it decides
        return False
    return True
