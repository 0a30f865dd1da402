"""The Open Inference Protocol (KServe V2) against a real `mlrig serve`, spoken by real clients:
Triton's `tritonclient[http]` and KServe's `InferenceRESTClient`."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from tests.conftest import (
    WINE_ROW,
    Server,
    run_cli,
    stored_predictions,
    write_taxi_config,
    write_taxi_parquet,
)

NAME = "wine-quality"
FEATURES = list(WINE_ROW)
ROWS = np.array([list(WINE_ROW.values()), [*list(WINE_ROW.values())[:-1], 12.8]])
ADMIN = "adm1n-t0ken"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, trained_template: Path) -> Iterator[Server]:
    home = tmp_path_factory.mktemp("v2") / ".mlrig"
    shutil.copytree(trained_template, home)
    srv = Server(home, env={"MLRIG_ADMIN_TOKEN": ADMIN, "MLRIG_SERVING__MAX_BATCH_ROWS": "50"})
    try:
        srv.wait_ready()
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def client(server: Server) -> Iterator[triton.InferenceServerClient]:
    c = triton.InferenceServerClient(server.url.removeprefix("http://"))
    try:
        yield c
    finally:
        c.close()


def _columns(rows: np.ndarray, binary: bool = True, dtype: str = "FP64") -> list[Any]:
    inputs = []
    for j, feature in enumerate(FEATURES):
        i = triton.InferInput(feature, [len(rows)], dtype)
        i.set_data_from_numpy(
            rows[:, j].astype(np.float32 if dtype == "FP32" else np.float64), binary
        )
        inputs.append(i)
    return inputs


def _ids(values: list[str], name: str = "id") -> Any:
    i = triton.InferInput(name, [len(values)], "BYTES")
    i.set_data_from_numpy(np.array(values, dtype=object))
    return i


def _text(values: Any) -> list[str]:
    """BYTES outputs as str (tritonclient gives bytes from binary data, str from JSON)."""
    return [v.decode() if isinstance(v, bytes) else str(v) for v in values]


def _reference(server: Server, rows: np.ndarray) -> list[float]:
    body = [dict(zip(FEATURES, r, strict=True)) for r in rows.tolist()]
    r = httpx.post(f"{server.url}/predict", json=body)
    return [p["prediction"] for p in r.json()["predictions"]]


def test_health_and_metadata_through_tritonclient(
    server: Server, client: triton.InferenceServerClient
) -> None:
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready(NAME) and not client.is_model_ready("other")
    assert client.get_server_metadata()["extensions"] == ["binary_tensor_data"]
    meta = client.get_model_metadata(NAME)
    assert meta["name"] == NAME and meta["versions"] == ["1"]
    assert [(i["name"], i["datatype"], i["shape"]) for i in meta["inputs"]] == [
        (f, "FP64", [-1]) for f in FEATURES
    ]
    assert [o["name"] for o in meta["outputs"]] == ["predict", "id"]
    assert client.get_model_metadata(NAME, "1") == meta
    with pytest.raises(InferenceServerException, match="serves 'wine-quality'"):
        client.get_model_metadata("wine")
    spec = httpx.get(f"{server.url}/openapi.json").json()
    example = spec["paths"]["/v2/models/{name}/infer"]["post"]["requestBody"]["content"]
    assert [i["name"] for i in example["application/json"]["example"]["inputs"]] == [
        *FEATURES,
        "id",
    ]


@pytest.mark.parametrize("binary", [True, False])
def test_columnar_infer_answers_like_predict_and_logs_v2_rows(
    server: Server, client: triton.InferenceServerClient, binary: bool
) -> None:
    ids = [f"tc-{binary}-a", f"tc-{binary}-b"]
    result = client.infer(
        NAME, [*_columns(ROWS, binary), _ids(ids)], request_id="req-1",
        outputs=[triton.InferRequestedOutput("predict", binary), triton.InferRequestedOutput("id")],
    )  # fmt: skip
    response = result.get_response()
    assert response["id"] == "req-1" and response["model_version"] == "1"
    np.testing.assert_allclose(result.as_numpy("predict"), _reference(server, ROWS))
    assert _text(result.as_numpy("id")) == ids
    logged = stored_predictions(server.home).set_index("id")
    assert list(logged.loc[ids, "endpoint"]) == ["v2", "v2"]
    np.testing.assert_allclose(logged.loc[ids, "prediction"], result.as_numpy("predict"))


def test_2d_form_and_versioned_path(server: Server, client: triton.InferenceServerClient) -> None:
    matrix = triton.InferInput("input-0", list(ROWS.shape), "FP32")
    matrix.set_data_from_numpy(ROWS.astype(np.float32), binary_data=False)
    result = client.infer(NAME, [matrix], model_version="1")
    np.testing.assert_allclose(result.as_numpy("predict"), _reference(server, ROWS), rtol=1e-5)
    generated = _text(result.as_numpy("id"))
    assert all(g.endswith(f"-{k}") for k, g in enumerate(generated))  # <batch id>-<row>
    assert set(generated) <= set(stored_predictions(server.home)["id"])
    with pytest.raises(InferenceServerException, match="version '7' is not served"):
        client.infer(NAME, [matrix], model_version="7")


def test_refusals_surface_as_the_clients_exception_and_log_nothing(
    server: Server, client: triton.InferenceServerClient
) -> None:
    before = len(stored_predictions(server.home))
    nan = ROWS.copy()
    nan[1, 3] = np.nan
    huge = _columns(ROWS)
    huge[10].set_data_from_numpy(np.array([9.4, 1e300]), binary_data=False)
    text = _columns(ROWS)
    text[0] = triton.InferInput(FEATURES[0], [2], "BYTES")
    text[0].set_data_from_numpy(np.array(["7.4", "x"], dtype=object))
    narrow = triton.InferInput("input-0", [2, 10], "FP64")
    narrow.set_data_from_numpy(ROWS[:, :10].copy())
    cases = [
        (
            "wine",
            _columns(ROWS),
            "404",
            "model 'wine' not found: this server serves 'wine-quality'",
        ),
        (NAME, _columns(ROWS)[:-1], "422", "missing input 'alcohol'"),
        (NAME, [narrow], "422", "input 'input-0': shape [2, 10], expected [n, 11]"),
        (NAME, text, "422", "datatype BYTES, but feature 'fixed acidity' is numeric"),
        (NAME, _columns(nan), "422", "record 1: field 'residual sugar' must be a finite number"),
        (NAME, huge, "422", "record 1: field 'alcohol' must be between"),
        (NAME, [*_columns(ROWS), _ids(["a", "a"])], "422", "record 1: duplicate id 'a'"),
    ]
    for model, inputs, status, words in cases:
        with pytest.raises(InferenceServerException) as err:
            client.infer(model, inputs)
        assert words in err.value.message(), (words, err.value.message())
        assert err.value.status() == status, words
    assert len(stored_predictions(server.home)) == before


def test_kserve_rest_client(server: Server, kserve_client: Any) -> None:
    kserve = kserve_client

    async def talk() -> tuple[Any, ...]:
        config = kserve.RESTConfig(protocol="v2", timeout=30)
        async with kserve.InferenceRESTClient(config) as c:
            health = (
                await c.is_server_live(server.url),
                await c.is_server_ready(server.url),
                await c.is_model_ready(server.url, NAME),
            )
            inputs = [
                kserve.InferInput(f, [2], "FP64", ROWS[:, j].tolist())
                for j, f in enumerate(FEATURES)
            ]
            inputs.append(kserve.InferInput("ride_id", [2], "BYTES", ["k-1", "k-2"]))
            request = kserve.InferRequest(NAME, inputs, request_id="k-req")
            answer = await c.infer(server.url, request, model_name=NAME)
            with pytest.raises(httpx.HTTPStatusError) as err:
                await c.infer(server.url, kserve.InferRequest(NAME, inputs[1:]), model_name=NAME)
            return health, answer, str(err.value)

    health, answer, refused = asyncio.run(talk())
    assert health == (True, True, True)
    assert answer.id == "k-req" and answer.model_name == NAME
    out = {o.name: o.data for o in answer.outputs}
    np.testing.assert_allclose(out["predict"], _reference(server, ROWS))
    assert out["id"] == ["k-1", "k-2"]
    assert "missing input 'fixed acidity'" in refused and "422" in refused
    assert {"k-1", "k-2"} <= set(stored_predictions(server.home)["id"])


def test_metrics_count_v2_requests(server: Server) -> None:
    text = httpx.get(f"{server.url}/metrics").text
    assert 'mlrig_requests_total{endpoint="v2",status="200"}' in text
    assert 'mlrig_requests_total{endpoint="v2",status="422"}' in text


def test_hot_swap_moves_v2_answers_and_metadata(
    server: Server, client: triton.InferenceServerClient
) -> None:
    """Runs last in the module: it moves the served version to 2."""
    from mlflow import MlflowClient

    uri = f"sqlite:///{server.home.resolve() / 'mlflow.db'}"
    registry = MlflowClient(uri, uri)
    v1 = registry.get_model_version(NAME, "1")
    files = registry.get_model_version_download_uri(NAME, "1").removeprefix("file://")
    v2 = registry.create_model_version(NAME, files, run_id=v1.run_id).version
    registry.set_registered_model_alias(NAME, "champion", v2)
    reload = httpx.post(
        f"{server.url}/admin/reload", headers={"Authorization": f"Bearer {ADMIN}"}, timeout=60
    )
    assert reload.json()["changed"] is True, reload.text
    result = client.infer(NAME, _columns(ROWS[:1]))
    assert result.get_response()["model_version"] == str(v2)
    assert client.get_model_metadata(NAME)["versions"] == [str(v2)]
    with pytest.raises(InferenceServerException, match=f"this server serves version {v2}"):
        client.infer(NAME, _columns(ROWS[:1]), model_version="1")
    logged = stored_predictions(server.home)
    swapped = logged[logged["id"] == _text(result.as_numpy("id"))[0]]
    assert list(swapped["model_version"]) == [str(v2)]


@pytest.mark.slow
def test_categorical_bytes_inputs_on_a_taxi_model(tmp_path: Path, home: Path) -> None:
    data = write_taxi_parquet(tmp_path / "green_tripdata_2021-01.parquet")
    config = write_taxi_config(tmp_path / "taxi.toml", data)
    done = run_cli("run", "--home", str(home), "--config", str(config), "--quiet")
    assert done.returncode == 0, done.stderr
    server = Server(home, env={"MLRIG_SERVING__MODEL": "taxi-duration@champion"})
    try:
        server.wait_ready()
        c = triton.InferenceServerClient(server.url.removeprefix("http://"))
        meta = c.get_model_metadata("taxi-duration")
        assert [i["datatype"] for i in meta["inputs"]] == ["BYTES", "BYTES", "FP64"]

        def inputs(pu: list[str], km_type: str = "FP64") -> list[Any]:
            zone = triton.InferInput("PULocationID", [len(pu)], "BYTES")
            zone.set_data_from_numpy(np.array(pu, dtype=object))
            drop = triton.InferInput("DOLocationID", [len(pu)], "BYTES")
            drop.set_data_from_numpy(np.array(["7"] * len(pu), dtype=object))
            km = triton.InferInput("trip_distance", [len(pu)], km_type)
            km.set_data_from_numpy(np.full(len(pu), 2.0, dtype=np.float64))
            return [zone, drop, km]

        ride = triton.InferInput("ride_id", [2], "INT64")
        ride.set_data_from_numpy(np.array([101, 102], dtype=np.int64))
        result = c.infer("taxi-duration", [*inputs(["132", "265"]), ride])
        preds = result.as_numpy("predict")
        r = httpx.post(
            f"{server.url}/predict",
            json={"PULocationID": "132", "DOLocationID": "7", "trip_distance": 2.0},
        )
        assert preds[0] == pytest.approx(r.json()["predictions"][0]["prediction"])
        assert preds[1] < preds[0]  # an unknown zone: no zone effect, still answered
        assert _text(result.as_numpy("id")) == ["101", "102"]
        logged = stored_predictions(home).set_index("id")
        assert list(logged.loc[["101", "102"], "endpoint"]) == ["v2", "v2"]
        numeric_zone = triton.InferInput("PULocationID", [1], "FP64")
        numeric_zone.set_data_from_numpy(np.array([1.5]))
        with pytest.raises(InferenceServerException, match="feature 'PULocationID' is categorical"):
            c.infer("taxi-duration", [numeric_zone, *inputs(["1"])[1:]])
        c.close()
    finally:
        server.stop()
