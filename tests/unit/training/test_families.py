"""Every family fits, predicts and scores on raw records with categorical columns."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from mlrig.data.schema import FeatureSchema
from mlrig.errors import ConfigError
from mlrig.tracking.loading import accept_arrays
from mlrig.training.families import FAMILIES, default_family, family, resolve_params
from mlrig.training.train import (
    ModelSpec,
    fit_model,
    importances,
    score_model,
)


def _data(task: str, n: int = 240) -> tuple[pd.DataFrame, pd.Series, FeatureSchema]:
    rng = np.random.default_rng(3)
    zone = rng.choice(["a", "b", "c"], n)
    dist = rng.gamma(2.0, 1.5, n)
    effect = pd.Series(zone).map({"a": 0.0, "b": 4.0, "c": -3.0}).to_numpy()
    y = 2.0 * dist + effect + rng.normal(0, 0.5, n)
    if task == "classification":
        y = (y > np.median(y)).astype("int64")
    x = pd.DataFrame({"zone": zone, "distance": dist})
    return x, pd.Series(y, name="y"), FeatureSchema(("zone", "distance"), "y", ("zone",), task)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("name", "task"), [(f.name, t) for f in FAMILIES.values() for t in sorted(f.tasks)]
)
def test_family_learns_from_numeric_and_categorical_columns(name: str, task: str) -> None:
    x, y, schema = _data(task)
    fam = FAMILIES[name]
    params = dict(fam.defaults)
    if fam.stages:
        params[fam.stages] = 30  # keep the test quick
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no convergence or feature-name warnings
        model = fit_model(x, y, schema, ModelSpec(name, params, 1))
        metrics = score_model(model, x, y, task)
    if task == "regression":
        assert metrics["r2"] > 0.5, metrics
    else:
        assert metrics["roc_auc"] > 0.8 and 0 < metrics["ks"] <= 1, metrics
    unseen = pd.DataFrame({"zone": ["zzz"], "distance": [1.0]})  # unknown category tolerated
    assert np.isfinite(model.predict(unseen)).all()
    # serving passes an object array in feature order, not a DataFrame
    accept_arrays(model)
    assert np.isfinite(model.predict(unseen.to_numpy(dtype=object))).all()


def test_importances_name_the_encoded_columns() -> None:
    x, y, schema = _data("regression")
    model = fit_model(x, y, schema, ModelSpec("ridge", {"alpha": 1.0}))
    found = importances(model)
    assert found is not None
    names, values, kind = found
    assert set(names) == {"zone_a", "zone_b", "zone_c", "distance"}
    assert len(values) == 4 and kind == "coefficients"


def test_family_refuses_unknown_names_and_the_wrong_task() -> None:
    with pytest.raises(ConfigError, match=r"train\.model = 'xgb': unknown model family"):
        family("xgb", "regression")
    with pytest.raises(ConfigError, match="cannot do classification"):
        family("elasticnet", "classification")
    assert default_family("classification") == "logistic"


def test_params_overlay_defaults_and_unknown_params_are_named() -> None:
    fam = FAMILIES["elasticnet"]
    assert resolve_params(fam, {"alpha": 0.1}) == {"alpha": 0.1, "l1_ratio": 0.5}
    with pytest.raises(ConfigError, match="'depth' not a parameter of elasticnet"):
        resolve_params(fam, {"depth": 3})
