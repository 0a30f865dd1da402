"""Each seed's own request, as written in the seed, against a real `mlrig serve` with the model
trained on the seed's columns: the zoomcamp's ride requests (taxi model, categorical zones), the
ml-pipes body (a fraud classifier on V1..V28 + Amount, trained on a file with an ``id``
column), the French demo's curl to /invocations (the wine model). Plus the refusals of
ambiguous bodies, and the OpenAPI examples of every accepted shape, each answered 200.

The bodies are copied verbatim from ../shared/seeds (CI has no copy of it): file and lines
are cited above each.
"""

from __future__ import annotations

import shlex
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import (
    Server,
    run_cli,
    stored_predictions,
    write_taxi_config,
    write_taxi_parquet,
)

# lightweight-mlops-zoomcamp.md, lines 223-227 (the first request, a bare record)
ZOOMCAMP_RIDE_V1 = b"""{
    "PULocationID": 100,
    "DOLocationID": 102,
    "trip_distance": 30
}"""
# lightweight-mlops-zoomcamp.md, lines 268-275 (the request with an id: "ride_id" beside "ride")
ZOOMCAMP_RIDE_V2 = b"""{
    "ride_id": "ride_xyz",
    "ride": {
        "PULocationID": 100,
        "DOLocationID": 102,
        "trip_distance": 30
    }
}"""
# ml-pipes.md, lines 106-137 (two observations as DataFrame.to_dict("list") writes them)
ML_PIPES_BODY = b"""{
  "V1": [-1.54878809850026, -1.80346507043129],
  "V2": [1.80869795041448, 1.94336351248285],
  "V3": [-0.953509033832342, -0.477192108231044],
  "V4": [2.21308539346999, -0.401702597457705],
  "V5": [-2.01572779170327,-0.364354050082577],
  "V6": [-0.913456844516923, -1.36866894683339],
  "V7": [-2.35601298316433, 0.387747076722669],
  "V8": [1.19716896702387, 0.344476113557209],
  "V9": [-1.67837405659509, 0.445387497102268],
  "V10": [-3.53865023182429, 0.731469924962325],
  "V11": [3.1020899271543, -0.685099722598294],
  "V12": [-3.99337305447702, 0.335507199868123],
  "V13": [-1.93741062327519, -0.251346974320909],
  "V14": [-3.82289410599595, 0.397305842955965],
  "V15": [0.830970110708369, -0.0994221366011376],
  "V16": [-2.47535885382925, -0.432827203638135],
  "V17": [-5.21187516766885, 0.182755154865333],
  "V18": [-0.413871678166879, -0.868298803648426],
  "V19": [0.933262164554872, 0.150896667377805],
  "V20": [0.390785963777347, 0.136729912408897],
  "V21": [0.855138263312025, -0.188720269612872],
  "V22": [0.77474482148342, -0.356520984447129],
  "V23": [0.0590371520063436, 0.187783520495935],
  "V24": [0.343199807900813, 0.390557329551228],
  "V25": [-0.468937928609185, -0.933427342866825],
  "V26": [-0.278337986906642, 0.0844267878051226],
  "V27": [0.625922215184372, -0.0667968389304196],
  "V28": [0.395573378256676, 0.0853278684349329],
  "Amount": [76.94, 4.95],
  "id": [116139, 256736]
}"""
# demo-mlflow-fr.md, line 204 (the curl to /invocations of `mlflow models serve`)
FRENCH_CURL = r"""curl -X POST -H "Content-Type:application/json; format=pandas-split" --data '{"columns":["alcohol", "chlorides", "citric acid", "density", "fixed acidity", "free sulfur dioxide", "pH", "residual sugar", "sulphates", "total sulfur dioxide", "volatile acidity"],"data":[[12.8, 0.029, 0.48, 0.98, 6.2, 29, 3.33, 1.2, 0.39, 75, 0.66]]}' http://0.0.0.0:54321/invocations"""

V_FEATURES = [f"V{i}" for i in range(1, 29)] + ["Amount"]


def write_fraud_parquet(path: Path, n: int = 400, seed: int = 0) -> Path:
    """A small credit-card-fraud-shaped file (ml-pipes' columns: V1..V28, Amount, an ``id``
    and the binary ``Class``) whose label depends on V4, V14 and V17, as in the real data."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.normal(0, 1.5, (n, 28)), columns=V_FEATURES[:-1])
    frame["Amount"] = rng.gamma(1.5, 40.0, n)
    frame["id"] = rng.choice(300_000, n, replace=False)
    score = frame["V4"] - frame["V14"] - frame["V17"] + rng.normal(0, 0.5, n)
    frame["Class"] = (score > 3).astype("int64")
    frame.to_parquet(path, index=False)
    return path


def _train(home: Path, config: Path) -> None:
    done = run_cli("run", "--home", str(home), "--config", str(config), "--quiet")
    assert done.returncode == 0, done.stderr


def _serve(home: Path, model: str) -> Server:
    server = Server(home, env={"MLRIG_SERVING__MODEL": model})
    try:
        server.wait_ready()
    except BaseException:
        server.stop()
        raise
    return server


@pytest.fixture(scope="module")
def taxi(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The zoomcamp's model: trip duration from categorical zones and the distance."""
    root = tmp_path_factory.mktemp("taxi")
    data = write_taxi_parquet(root / "green_tripdata_2021-01.parquet")
    config = write_taxi_config(root / "taxi.toml", data)
    _train(root / ".mlrig", config)
    server = _serve(root / ".mlrig", "taxi-duration@champion")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def fraud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """ml-pipes' model: a classifier on V1..V28 + Amount; no feature list is given, so the
    file's ``id`` column must be left out of the features by the id rule alone."""
    root = tmp_path_factory.mktemp("fraud")
    data = write_fraud_parquet(root / "creditcard.parquet")
    config = root / "fraud.toml"
    config.write_text(
        f'[data]\nsource = "{data}"\ntarget = "Class"\n'
        '[train]\nmodel = "logistic"\nplots = false\n'
        '[tracking]\nmodel_name = "credit-card-default"\n'
    )
    _train(root / ".mlrig", config)
    server = _serve(root / ".mlrig", "credit-card-default@champion")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def wine(tmp_path_factory: pytest.TempPathFactory, trained_template: Path) -> Iterator[Server]:
    home = tmp_path_factory.mktemp("wine") / ".mlrig"
    shutil.copytree(trained_template, home)
    server = _serve(home, "wine-quality@champion")
    yield server
    server.stop()


def _post(server: Server, body: bytes, path: str = "/predict", **headers: str) -> httpx.Response:
    headers.setdefault("content-type", "application/json")
    return httpx.post(f"{server.url}{path}", content=body, headers=headers, timeout=30)


def _logged(server: Server):  # type: ignore[no-untyped-def]
    return stored_predictions(server.home)


# --- the seeds' own requests -------------------------------------------------------------------


def test_zoomcamp_bare_ride_record_still_works(taxi: Server) -> None:
    r = _post(taxi, ZOOMCAMP_RIDE_V1)
    assert r.status_code == 200, r.text
    (pred,) = r.json()["predictions"]
    assert (
        pred["model"] == "taxi-duration"
        and 3 + 2.5 * 30 - 10 < pred["prediction"] < 3 + 2.5 * 30 + 10
    )


def test_zoomcamp_ride_request_is_answered_with_its_ride_id_and_logged_under_it(
    taxi: Server,
) -> None:
    r = _post(taxi, ZOOMCAMP_RIDE_V2)
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["ride_id"] == "ride_xyz"  # the zoomcamp client reads it back by its name
    (pred,) = answer["predictions"]
    assert pred["id"] == pred["ride_id"] == "ride_xyz"
    bare = _post(taxi, ZOOMCAMP_RIDE_V1).json()["predictions"][0]["prediction"]
    assert pred["prediction"] == pytest.approx(bare)  # the same ride, nested or not
    log = _logged(taxi)
    row = log.set_index("id").loc["ride_xyz"]
    assert row["model_version"] == answer["version"] == "1"
    assert (row["PULocationID"], row["DOLocationID"]) == ("100", "102")
    assert row["trip_distance"] == 30.0
    # feedback joins on the client's id
    fb = httpx.post(f"{taxi.url}/feedback", json={"id": "ride_xyz", "actual": 80.0})
    assert fb.status_code == 200, fb.text
    assert _logged(taxi).set_index("id").loc["ride_xyz", "actual"] == 80.0


def test_ml_pipes_columns_with_an_id_column_are_answered_per_id_and_logged(fraud: Server) -> None:
    spec = httpx.get(f"{fraud.url}/openapi.json").json()
    record = spec["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]
    assert record["schema"]["anyOf"][0]["required"] == V_FEATURES  # id is not a feature
    r = _post(fraud, ML_PIPES_BODY)
    assert r.status_code == 200, r.text
    preds = r.json()["predictions"]
    assert [p["id"] for p in preds] == ["116139", "256736"]  # integer ids, as text
    assert [p["prediction"] for p in preds] == [1, 0]  # V4 - V14 - V17: 11.2 vs -1.0
    assert preds[0]["probability"] > 0.9 > 0.1 > preds[1]["probability"]
    log = _logged(fraud).set_index("id")
    assert list(log.loc[["116139", "256736"], "prediction"]) == [1, 0]
    assert set(log.loc[["116139", "256736"], "model_version"]) == {"1"}
    assert log.loc["116139", "V14"] == pytest.approx(-3.82289410599595)


def test_french_demo_curl_to_invocations_is_answered(wine: Server) -> None:
    args = shlex.split(FRENCH_CURL)
    name, _, value = args[args.index("-H") + 1].partition(":")
    body = args[args.index("--data") + 1].encode()
    assert args[-1].endswith("/invocations")
    before = len(_logged(wine))
    r = _post(wine, body, "/invocations", **{name: value})
    assert r.status_code == 200, r.text
    (prediction,) = r.json()["predictions"]
    assert 3 < prediction < 8  # a wine quality score
    log = _logged(wine)
    assert len(log) == before + 1 and log["alcohol"].iloc[-1] == 12.8


# --- refusals ----------------------------------------------------------------------------------

RIDE = {"PULocationID": 100, "DOLocationID": 102, "trip_distance": 30}


@pytest.mark.parametrize(
    ("body", "field", "text"),
    [
        ({"ride_id": "r1", "ride": RIDE, "trip": RIDE}, "trip", "two nested objects"),
        (
            {"PULocationID": [100], "DOLocationID": [102], "trip_distance": 30},
            "PULocationID",
            "is a list but 'trip_distance' is not",
        ),
        (
            {"PULocationID": [1, 2], "DOLocationID": [3, 4], "trip_distance": [1.0]},
            "trip_distance",
            "columns must be equally long",
        ),
        (
            {"PULocationID": [1], "DOLocationID": [3], "trip_distance": [1.0], "ride_id": [{}]},
            "ride_id",
            "must be a string or an integer",
        ),
        ({"id": "a", "ride_id": "r1", "ride": RIDE}, "ride_id", "'id' and 'ride_id'"),
        ({**RIDE, "id": "a", "ride_id": "r1"}, "ride_id", "'id' and 'ride_id'"),
    ],
)
def test_ambiguous_bodies_are_a_422_naming_the_field_and_never_logged(
    taxi: Server, body: object, field: str, text: str
) -> None:
    import orjson

    before = len(_logged(taxi))
    r = _post(taxi, orjson.dumps(body))
    assert r.status_code == 422 and r.json()["field"] == field and text in r.json()["error"], r.text
    assert len(_logged(taxi)) == before


# --- OpenAPI: a named example per accepted shape, each answered --------------------------------

PREDICT_EXAMPLES = {"one record", "a list", "records", "id beside a nested record", "columns"}
INVOCATION_EXAMPLES = {
    "dataframe_split",
    "dataframe_records",
    "instances",
    "inputs",
    "MLflow 1.x pandas-split",
}


@pytest.mark.parametrize("which", ["taxi", "fraud", "wine"])
def test_every_openapi_example_is_answered_200(which: str, request: pytest.FixtureRequest) -> None:
    server: Server = request.getfixturevalue(which)
    spec = httpx.get(f"{server.url}/openapi.json").json()
    for path, names in (("/predict", PREDICT_EXAMPLES), ("/invocations", INVOCATION_EXAMPLES)):
        media = spec["paths"][path]["post"]["requestBody"]["content"]["application/json"]
        assert set(media["examples"]) == names
        for name, example in media["examples"].items():
            r = httpx.post(f"{server.url}{path}", json=example["value"], timeout=30)
            assert r.status_code == 200, (path, name, r.text)
    nested = spec["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]
    answer = httpx.post(
        f"{server.url}/predict", json=nested["examples"]["id beside a nested record"]["value"]
    ).json()
    assert answer["record_id"] == answer["predictions"][0]["record_id"]
