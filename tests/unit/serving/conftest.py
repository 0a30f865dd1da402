"""Predictors the serving unit tests share."""

from __future__ import annotations

import pandas as pd
import pytest

from mlrig.serving.predictor import Predictor
from mlrig.tracking.loading import LoadedModel


@pytest.fixture
def zoned() -> Predictor:
    """A Pipeline with a categorical column, as `mlrig run` builds it."""
    from mlrig.data.schema import FeatureSchema
    from mlrig.training.train import ModelSpec, fit_model

    frame = pd.DataFrame({"zone": ["132", "7", "132", "48"] * 5, "km": [1.0, 2.0, 3.0, 4.0] * 5})
    y = frame["km"] * 2 + (frame["zone"] == "132") * 5
    schema = FeatureSchema(("zone", "km"), "y", ("zone",))
    model = fit_model(frame, y, schema, ModelSpec("ridge", {"alpha": 0.01}))
    return Predictor(LoadedModel(model, "taxi", "1", None, ("zone", "km"), ("zone",)), max_rows=10)
