"""What serving lets a model file run: skops only by default, trusted types from the settings
(never from the model), pickle only when allowed — checked on real registered versions."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from mlrig.config import load_settings
from mlrig.errors import ModelRefusedError
from mlrig.tracking.loading import LoadTrust, load_model, load_model_dir
from tests.conftest import WINE_ROW
from tests.integration.test_follower_faults import (
    NAME,
    _as_pickle,
    _copy,
    _register,
    _self_trusting,
)

DEFAULT = LoadTrust.from_settings(load_settings().serving)


@pytest.fixture
def client(trained_home: Path) -> MlflowClient:
    uri = f"sqlite:///{trained_home / 'mlflow.db'}"
    return MlflowClient(uri, uri)


def _predict(estimator: Any) -> float:
    return float(estimator.predict(pd.DataFrame([WINE_ROW]))[0])


def test_pickle_is_refused_unless_allowed(client: MlflowClient, tmp_path: Path) -> None:
    version = _register(client, _as_pickle(_copy(client, tmp_path / "pkl")))
    with pytest.raises(
        ModelRefusedError, match=rf"version {version}: saved as pickle.*serving\.allow_pickle"
    ):
        load_model(client, f"{NAME}/{version}", DEFAULT)
    allowed = load_model(client, f"{NAME}/{version}", LoadTrust(allow_pickle=True))
    assert _predict(allowed.estimator) == _predict(
        load_model(client, f"{NAME}/1", DEFAULT).estimator
    )


def test_a_model_cannot_trust_its_own_types(client: MlflowClient, tmp_path: Path) -> None:
    version = _register(client, _self_trusting(_copy(client, tmp_path / "t")))
    with pytest.raises(ModelRefusedError, match=r"_operator\.pos.*serving\.trusted_types"):
        load_model(client, f"{NAME}/{version}", DEFAULT)
    trusted = LoadTrust(trusted_types=(*DEFAULT.trusted_types, "_operator.pos"))
    assert load_model(client, f"{NAME}/{version}", trusted).features[-1] == "alcohol"


def test_mlflow_switch_off_refuses_even_skops(
    client: MlflowClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "false")
    with pytest.raises(ModelRefusedError, match="MLFLOW_ALLOW_PICKLE_DESERIALIZATION"):
        load_model(client, f"{NAME}/1", DEFAULT)


@pytest.mark.slow  # importing skops and saving three models: ≈5–20 s on a shared machine
def test_default_trust_loads_every_kind_of_model_mlrig_trains(tmp_path: Path) -> None:
    """Forests and boosters hold tree types skops does not trust by default; the default
    ``serving.trusted_types`` names them, and categorical pipelines need nothing more."""
    import mlflow.sklearn
    from mlflow.models import infer_signature
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingRegressor, RandomForestRegressor
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    rng = np.random.default_rng(0)
    x = pd.DataFrame({"a": rng.normal(size=60), "zone": rng.choice(["n", "s"], 60)})
    y = (x["a"] > 0).astype(int)
    num = x[["a"]]
    models = {
        "forest": (RandomForestRegressor(n_estimators=3, random_state=0).fit(num, y), num),
        "booster": (HistGradientBoostingRegressor(max_iter=5).fit(num, y), num),
        "categorical": (
            make_pipeline(
                ColumnTransformer([("z", OneHotEncoder(), ["zone"])], remainder="passthrough"),
                LogisticRegression(),
            ).fit(x, y),
            x,
        ),
    }
    for label, (model, frame) in models.items():
        path = tmp_path / label
        mlflow.sklearn.save_model(
            model,
            str(path),
            signature=infer_signature(frame, y),
            pip_requirements=["scikit-learn"],  # no ≈10 s inference per save
            serialization_format="skops",
            # What the MLmodel says is ignored on load: serving decides what it trusts.
            skops_trusted_types=[*DEFAULT.trusted_types, "builtins.eval"],
        )
        loaded = load_model_dir(path, label, "1", None, DEFAULT)
        np.testing.assert_allclose(loaded.estimator.predict(frame), model.predict(frame))
    shutil.rmtree(tmp_path)
