"""direct_model: the Pipeline's arithmetic without its per-call checks answers exactly as the
Pipeline does, and anything it does not know keeps the Pipeline (None)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestRegressor
from sklearn.linear_model import ElasticNet, LogisticRegression, Ridge
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import MinMaxScaler, StandardScaler

from mlrig.serving.direct_model import direct_method

RNG = np.random.default_rng(7)
X = RNG.normal(5, 3, (200, 4))
Y = X @ np.array([1.0, -2.0, 0.5, 3.0]) + RNG.normal(0, 0.1, 200)


def _fit(prep: list[tuple[str, Any, list[int]]], final: Any, y: np.ndarray = Y) -> Pipeline:
    return Pipeline([("prepare", ColumnTransformer(prep)), ("model", final)]).fit(X, y)


@pytest.mark.parametrize(
    "prep",
    [
        [("numeric", StandardScaler(), [0, 1, 2, 3])],
        [("a", StandardScaler(), [2, 0]), ("b", "passthrough", [1]), ("c", "drop", [3])],
        [("numeric", StandardScaler(with_mean=False), [0, 1, 2, 3])],
    ],
)
@pytest.mark.parametrize("final", [ElasticNet(alpha=0.1), Ridge(alpha=1.0)])
def test_linear_pipelines_answer_exactly_as_sklearn(prep: Any, final: Any) -> None:
    model = _fit(prep, final)
    direct = direct_method(model, "predict", 4)
    assert direct is not None
    rows = RNG.normal(5, 3, (37, 4))
    assert np.array_equal(direct(rows), model.predict(rows))
    assert np.array_equal(direct(rows[:1]), model.predict(rows[:1]))


def test_other_estimators_are_called_directly_after_the_column_step() -> None:
    forest = _fit([("numeric", "passthrough", [0, 1, 2, 3])], RandomForestRegressor(5))
    direct = direct_method(forest, "predict", 4)
    assert direct is not None
    assert np.array_equal(direct(X[:9]), forest.predict(X[:9]))
    labels = (Y.mean() < Y).astype(int)
    clf = _fit([("numeric", StandardScaler(), [0, 1, 2, 3])], LogisticRegression(), labels)
    proba = direct_method(clf, "predict_proba", 4)
    assert proba is not None
    assert np.allclose(proba(X[:9]), clf.predict_proba(X[:9]), rtol=1e-12, atol=1e-12)


def test_unknown_steps_and_shapes_keep_the_pipeline() -> None:
    other_scaler = _fit([("numeric", MinMaxScaler(), [0, 1, 2, 3])], Ridge())
    assert direct_method(other_scaler, "predict", 4) is None
    assert direct_method(Ridge().fit(X, Y), "predict", 4) is None  # not a Pipeline
    model = _fit([("numeric", StandardScaler(), [0, 1, 2, 3])], Ridge())
    assert direct_method(model, "predict", 3) is None  # columns beyond the matrix


def test_a_direct_path_that_disagrees_with_the_pipeline_is_not_used() -> None:
    class Shifted(StandardScaler):  # a subclass may transform differently: not trusted
        def transform(self, X: Any, copy: Any = None) -> Any:
            return super().transform(X, copy=copy) + 1.0

    model = _fit([("numeric", Shifted(), [0, 1, 2, 3])], Ridge())
    assert direct_method(model, "predict", 4) is None
    tampered = _fit([("numeric", StandardScaler(), [0, 1, 2, 3])], Ridge())
    direct = direct_method(tampered, "predict", 4)
    assert direct is not None
    tampered.steps[1][1].predict = lambda x: np.zeros(len(x))  # type: ignore[method-assign]
    assert direct_method(tampered, "predict", 4) is None  # checked against the model at load
