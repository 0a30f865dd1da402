"""The ASGI app in-process (TestClient): the raw fast path and its FastAPI twin behave alike."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from sklearn.linear_model import LinearRegression

from mlrig.config import load_settings
from mlrig.predictions.store import PredictionStore
from mlrig.predictions.writer import GroupCommitWriter
from mlrig.serving.app import create_app
from mlrig.serving.follower import ModelFollower
from mlrig.tracking.loading import LoadedModel

FEATURES = ("x1", "x2")


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[TestClient, TestClient, PredictionStore]]:
    frame = pd.DataFrame({"x1": [0.0, 1.0, 2.0, 3.0], "x2": [1.0, 0.0, 1.0, 0.0]})
    model = LoadedModel(
        LinearRegression().fit(frame, 2 * frame["x1"] + 10 * frame["x2"]), "m", "7", None, FEATURES
    )
    settings = load_settings(
        overrides={"home": tmp_path, "serving": {"poll_interval": 0, "max_body_bytes": 2048}}
    )
    follower = ModelFollower("m/7", lambda ref: model, lambda ref: "7", max_rows=100)
    follower.load_now()
    store = PredictionStore(settings.predictions_url)
    store.create_schema()
    front = create_app(settings, follower, store, GroupCommitWriter(store))
    with TestClient(front) as fast:  # runs the lifespan (writer thread) once
        yield fast, TestClient(front.app), PredictionStore(settings.predictions_url)


def test_fast_path_and_fastapi_routes_answer_alike(
    served: tuple[TestClient, TestClient, PredictionStore],
) -> None:
    fast, routed, store = served
    for client in (fast, routed):
        r = client.post("/predict", json=[{"x1": 2, "x2": 1, "id": "a"}, {"x1": 1, "x2": 0}])
        assert r.status_code == 200
        assert [p["prediction"] for p in r.json()["predictions"]] == pytest.approx([14.0, 2.0])
        r = client.post("/invocations", json={"instances": [[2, 1]]})
        assert r.json() == {"predictions": [pytest.approx(14.0)]}
        assert r.headers["x-model-version"] == "7"
        bad = client.post("/predict", json={"x1": 1, "x2": "x"})
        assert bad.status_code == 422 and bad.json()["field"] == "x2"
        big = client.post("/predict", content=b"[" + b"1," * 2000 + b"1]")
        assert big.status_code == 413
    assert store.count() == 6  # 3 good predictions through each front; refusals not logged
    assert fast.get("/health").json()["version"] == "7"  # non-hot routes pass through
