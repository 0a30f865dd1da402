"""The V2 routes in-process (TestClient): the raw fast path and its FastAPI twin answer alike,
and the GET routes say what is served."""

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

FEATURES = ("x1", "store_id")  # a feature named like an id stays a feature


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[TestClient, TestClient, PredictionStore]]:
    frame = pd.DataFrame({"x1": [0.0, 1.0, 2.0, 3.0], "store_id": [1.0, 0.0, 1.0, 0.0]})
    y = 2 * frame["x1"] + 10 * frame["store_id"]
    model = LoadedModel(LinearRegression().fit(frame, y), "m", "7", None, FEATURES)
    settings = load_settings(
        overrides={"home": tmp_path, "serving": {"poll_interval": 0, "id_fields": ["key"]}}
    )
    follower = ModelFollower("m/7", lambda ref: model, lambda ref: "7", max_rows=100)
    follower.load_now()
    store = PredictionStore(settings.predictions_url)
    store.create_schema()
    front = create_app(settings, follower, store, GroupCommitWriter(store))
    with TestClient(front) as fast:
        yield fast, TestClient(front.app), PredictionStore(settings.predictions_url)


def _body(key: str) -> dict[str, object]:
    return {
        "id": "r",
        "inputs": [
            {"name": "x1", "shape": [2], "datatype": "FP64", "data": [2, 1]},
            {"name": "store_id", "shape": [2, 1], "datatype": "INT64", "data": [[1], [0]]},
            {"name": "key", "shape": [2], "datatype": "BYTES", "data": [f"{key}-a", f"{key}-b"]},
        ],
    }


def test_fast_path_and_fastapi_twin_answer_v2_alike(
    served: tuple[TestClient, TestClient, PredictionStore],
) -> None:
    fast, routed, store = served
    for label, client in (("fast", fast), ("routed", routed)):
        for path in ("/v2/models/m/infer", "/v2/models/m/versions/7/infer"):
            key = f"{label}{path.count('/')}"
            r = client.post(path, json=_body(key))
            assert r.status_code == 200, r.text
            out = {o["name"]: o for o in r.json()["outputs"]}
            assert out["predict"]["data"] == pytest.approx([14.0, 2.0])
            assert out["id"]["data"] == [f"{key}-a", f"{key}-b"]  # the configured id rule
            assert r.json()["id"] == "r" and r.json()["model_version"] == "7"
        wrong = client.post("/v2/models/m/versions/6/infer", json=_body("x"))
        assert wrong.status_code == 404
        assert wrong.json() == {"error": "model 'm' version '6' is not served: this server "
                                "serves version 7"}  # fmt: skip
    frame = store.read_frame()
    assert len(frame) == 8 and set(frame["endpoint"]) == {"v2"}


def test_v2_get_routes(served: tuple[TestClient, TestClient, PredictionStore]) -> None:
    fast, _, _ = served
    assert fast.get("/v2/health/live").json() == {"live": True}
    assert fast.get("/v2/health/ready").json() == {"ready": True}
    assert fast.get("/v2").json()["name"] == "mlrig"
    meta = fast.get("/v2/models/m").json()
    assert meta["versions"] == ["7"] and [i["name"] for i in meta["inputs"]] == list(FEATURES)
    assert fast.get("/v2/models/m/versions/7").json() == meta
    assert fast.get("/v2/models/m/ready").json() == {"name": "m", "version": "7", "ready": True}
    for path in ("/v2/models/n", "/v2/models/n/ready", "/v2/models/m/versions/1/ready"):
        r = fast.get(path)
        assert r.status_code == 404 and "serves" in r.json()["error"], path
    assert fast.get("/v2/models/m/infer").status_code == 405  # infer is POST only
    spec = fast.get("/openapi.json").json()["paths"]
    assert {"/v2/models/{name}/infer", "/v2/models/{name}/versions/{version}/infer"} <= set(spec)
