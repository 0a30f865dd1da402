"""Bad input refused with a clear message, and nothing half-done.

- Training data through `mlrig run`: one message naming file and column, non-zero exit, and the
  registry untouched (no new run, no new version).
- Request bodies through a real `mlrig serve` (uvicorn on 127.0.0.1): a 4xx whose JSON body
  names the record, line and field — never a 500, never a 200 with a wrong or null answer —
  and the prediction log untouched. On PostgreSQL, a bad id in one request no longer fails the
  group commit of the requests sharing it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import WINE_ROW, Server, run_cli, stored_predictions


def _store_counts(home: Path) -> tuple[int, int]:
    from mlflow import MlflowClient

    uri = f"sqlite:///{home / 'mlflow.db'}"
    client = MlflowClient(uri, uri)
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    versions = client.search_model_versions("name='wine-quality'")
    return len(runs), len(versions)


def _wine(tmp_path: Path) -> pd.DataFrame:
    from mlrig.data.ingest import embedded_path

    return pd.read_csv(embedded_path(), sep=";").head(200)


CASES = {
    "missing_target": (
        lambda f: f.drop(columns=["quality"]),
        [],
        ["target column 'quality' is missing"],
    ),
    "nan": (
        lambda f: f.assign(alcohol=f["alcohol"].where(f.index != 5)),
        [],
        ["column 'alcohol'", "NaN", "line 7"],
    ),
    "non_numeric": (
        lambda f: f.assign(pH=f["pH"].astype(str).where(f.index != 3, "acid")),
        [],
        ["column 'pH'", "non-numeric", "'acid'"],
    ),
    "constant_target": (
        lambda f: f.assign(quality=5),
        [],
        ["column 'quality'", "target is constant"],
    ),
    "extra_column": (
        lambda f: f.assign(colour="red"),
        ["features"],
        ["column 'colour': unexpected extra column"],
    ),
    "missing_feature": (
        lambda f: f.drop(columns=["density"]),
        ["features"],
        ["column 'density': missing column"],
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_invalid_data_is_refused_and_nothing_is_registered(
    case: str, tmp_path: Path, trained_home: Path
) -> None:
    mutate, opts, expected = CASES[case]
    before = _store_counts(trained_home)
    frame = _wine(tmp_path)
    path = tmp_path / f"{case}.csv"
    mutate(frame).to_csv(path, sep=";", index=False)
    args = ["run", "--home", str(trained_home), "--data", str(path)]
    if opts:
        features = [c for c in frame.columns if c != "quality"]
        (tmp_path / "strict.toml").write_text(f"[data]\nfeatures = {json.dumps(features)}\n")
        args += ["--config", str(tmp_path / "strict.toml")]
    done = run_cli(*args)
    assert done.returncode == 3, done.stdout + done.stderr
    assert str(path) in done.stderr
    for text in expected:
        assert text in done.stderr
    assert "Traceback" not in done.stderr
    assert _store_counts(trained_home) == before


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("empty.csv", b"", "is empty"),
        ("wine.xlsx", b"PK\x03\x04\x14\x00\x06\x00binary\x00zip", "is not CSV or Parquet"),
        ("missing.csv", None, "not found"),
    ],
)
def test_unreadable_file_is_refused_and_nothing_is_registered(
    name: str, content: bytes | None, expected: str, tmp_path: Path, trained_home: Path
) -> None:
    before = _store_counts(trained_home)
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    done = run_cli("run", "--home", str(trained_home), "--data", str(path))
    assert done.returncode == 3
    assert f"data file {path}: {expected}" in done.stderr
    assert _store_counts(trained_home) == before


def test_bad_config_exits_2_naming_the_field(tmp_path: Path, trained_home: Path) -> None:
    before = _store_counts(trained_home)
    done = run_cli("run", "--home", str(trained_home), "--l1-ratio", "3")
    assert done.returncode == 2
    assert "train.l1_ratio" in done.stderr
    assert _store_counts(trained_home) == before


# --- over HTTP ---------------------------------------------------------------------------------

FEATURES = list(WINE_ROW)
HEADER = ",".join(FEATURES).encode()
ROW = ",".join(str(v) for v in WINE_ROW.values()).encode()
DEEP = (
    b"[" * 400 + b"1" + b"]" * 400
)  # orjson writes at most 255 levels: the old message builder raised


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, trained_template: Path):  # type: ignore[no-untyped-def]
    import shutil

    home = tmp_path_factory.mktemp("bad-input") / ".mlrig"
    shutil.copytree(trained_template, home)
    srv = Server(home)
    srv.wait_ready()
    yield srv
    srv.stop()


def _logged(home: Path) -> int:
    return len(stored_predictions(home))


def _csv(*lines: bytes, end: bytes = b"\n") -> bytes:
    return end.join(lines) + end


def _json_forms(value: bytes) -> list[tuple[str, bytes]]:
    """``value`` as the first feature of one record in every JSON format of both routes."""
    rest = b",".join(str(v).encode() for v in list(WINE_ROW.values())[1:])
    names = b",".join(b'"' + f.encode() + b'"' for f in FEATURES)
    record = (
        b'{"fixed acidity":'
        + value
        + b","
        + b",".join(
            b'"' + f.encode() + b'":' + str(v).encode() for f, v in list(WINE_ROW.items())[1:]
        )
        + b"}"
    )
    row = b"[" + value + b"," + rest + b"]"
    columns = (
        b"{"
        + b",".join(
            b'"'
            + f.encode()
            + b'":['
            + (value if f == FEATURES[0] else str(WINE_ROW[f]).encode())
            + b"]"
            for f in FEATURES
        )
        + b"}"
    )
    return [
        ("/predict", record),
        ("/predict", b"[" + record + b"]"),
        ("/predict", b'{"records":[' + record + b"]}"),
        ("/invocations", b'{"dataframe_split":{"columns":[' + names + b'],"data":[' + row + b"]}}"),
        ("/invocations", b'{"dataframe_records":[' + record + b"]}"),
        ("/invocations", b'{"instances":[' + row + b"]}"),
        ("/invocations", b'{"inputs":[' + row + b"]}"),
        ("/invocations", b'{"inputs":' + columns + b"}"),
    ]


def _refused(server: Server, path: str, body: bytes, content_type: str = "application/json"):  # type: ignore[no-untyped-def]
    import httpx

    r = httpx.post(
        f"{server.url}{path}", content=body, headers={"content-type": content_type}, timeout=30
    )
    assert 400 <= r.status_code < 500, (r.status_code, r.text)
    out = r.json()
    assert isinstance(out["error"], str) and out["error"]
    return r.status_code, out


@pytest.mark.parametrize(
    ("value", "status", "text"),
    [
        (b'"nan"', 422, "'fixed acidity' must be a number, got str \"nan\""),
        (b'"Infinity"', 422, 'must be a number, got str "Infinity"'),
        (b"NaN", 400, "not valid JSON"),
        (b"Infinity", 400, "not valid JSON"),
        (b"1e400", 400, "number is infinity"),  # overflows to inf: refused by the JSON reader
        (b"-1e400", 400, "number is infinity"),
        (b"1e101", 422, "'fixed acidity' must be between -1e+100 and 1e+100"),
        (b"true", 422, "must be a number, got bool"),
        (DEEP, 422, "'fixed acidity' must be a number, got list of 1 items"),
    ],
)
def test_non_finite_and_nested_values_are_refused_in_every_json_format(
    server: Server, value: bytes, status: int, text: str
) -> None:
    before = _logged(server.home)
    for path, body in _json_forms(value):
        code, out = _refused(server, path, body)
        assert code == status and text in out["error"], (path, body[:80], out)
        if status == 422:
            assert out["record"] == 0 and out["field"] == "fixed acidity", (path, out)
    assert _logged(server.home) == before


@pytest.mark.parametrize(
    ("body", "status", "text", "field"),
    [
        (
            _csv(HEADER, b"7.4," * 10 + b"1" * 131_073),
            400,
            "line 2: a field is longer than 131072 characters",
            None,
        ),
        (
            _csv(HEADER, ROW, ROW.replace(b"9.4", b"nan", 1)),
            422,
            "record 1 (line 3): field 'alcohol' must be a finite number, got str \"nan\"",
            "alcohol",
        ),
        (
            _csv(HEADER, ROW.replace(b"3.51", b"inf")),
            422,
            "field 'pH' must be a finite number, got str \"inf\"",
            "pH",
        ),
        (
            _csv(HEADER, ROW.replace(b"3.51", b"-Infinity")),
            422,
            "field 'pH' must be a finite number",
            "pH",
        ),
        (
            _csv(HEADER, ROW.replace(b"3.51", b"1e400")),
            422,
            "field 'pH' must be a finite number, got str \"1e400\"",
            "pH",
        ),
        (
            _csv(HEADER, ROW + b",5"),
            422,
            "record 0 (line 2): expected 11 values (one per header column), got 12",
            None,
        ),
        (
            _csv(HEADER, ROW, b"1,2"),
            422,
            "record 1 (line 3): expected 11 values (one per header column), got 2",
            None,
        ),
        (_csv(HEADER, b'"' + ROW), 400, "text/csv line 2: unexpected end of data", None),
        (b"\xff\xfe" + _csv(HEADER, ROW), 400, "must be UTF-8", None),
        (_csv(HEADER), 400, "no records", None),
    ],
)
def test_csv_bodies_get_a_4xx_naming_the_line_and_are_not_logged(
    server: Server, body: bytes, status: int, text: str, field: str | None
) -> None:
    before = _logged(server.home)
    code, out = _refused(server, "/invocations", body, "text/csv")
    assert code == status and text in out["error"] and out.get("field") == field, out
    assert out["message"] == out["error"] and out["error_code"] == "BAD_REQUEST"  # MLflow's shape
    assert _logged(server.home) == before


@pytest.mark.parametrize("end", [b"\r", b"\r\n", b"\n"])
def test_csv_lines_may_end_in_a_bare_carriage_return(server: Server, end: bytes) -> None:
    import httpx

    before = _logged(server.home)
    body = _csv(HEADER, ROW, ROW.replace(b"9.4", b"12.8"), end=end)
    r = httpx.post(f"{server.url}/invocations", content=body, headers={"content-type": "text/csv"})
    assert r.status_code == 200, r.text
    reference = httpx.post(
        f"{server.url}/invocations",
        json={"instances": [list(WINE_ROW.values()), [*list(WINE_ROW.values())[:-1], 12.8]]},
    )
    assert r.json()["predictions"] == reference.json()["predictions"]
    assert _logged(server.home) == before + 4


@pytest.mark.parametrize(
    ("rid", "text"),
    [
        ("x" * 129, "'id' must be at most 128 characters long, got 129"),
        ("a\u0000b", "'id' must not contain control characters, got U+0000 at position 1"),
        ("line\nbreak", "U+000A"),
        ("", "'id' must not be empty"),
        (2**53, "send it as a string"),
        (False, "must be a string or an integer, got bool"),
        ("0123456789abcdef0123456789abcdef-0", "form of a generated id"),
    ],
)
def test_a_bad_client_id_is_a_422_naming_the_record(server: Server, rid: object, text: str) -> None:
    import json

    before = _logged(server.home)
    body = json.dumps([{**WINE_ROW, "id": "fine-1"}, {**WINE_ROW, "id": rid}]).encode()
    code, out = _refused(server, "/predict", body)
    assert code == 422 and out["record"] == 1 and out["field"] == "id"
    assert out["error"].startswith("record 1: ") and text in out["error"], out
    assert _logged(server.home) == before


def test_invocations_take_no_client_id(server: Server) -> None:
    import json

    body = json.dumps({"dataframe_records": [{**WINE_ROW, "id": "x" * 200}]}).encode()
    code, out = _refused(server, "/invocations", body)
    assert code == 422 and out["field"] == "id" and "unknown field 'id'" in out["error"]


@pytest.mark.slow
def test_bad_ids_no_longer_fail_the_group_commit_on_postgresql(
    trained_home: Path, postgres_url: str
) -> None:
    """Requests in flight together share one group commit. A 129-character or NUL-holding id
    once reached it and PostgreSQL refused the whole transaction: every request in it got a
    503. Now the bad ones are 422s at the edge and every good one is answered and logged."""
    import asyncio

    import httpx
    import sqlalchemy as sa

    from mlrig.predictions.store import PredictionStore

    admin = sa.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text("DROP DATABASE IF EXISTS bad_input_ids"))
        conn.execute(sa.text("CREATE DATABASE bad_input_ids"))
    admin.dispose()
    url = postgres_url.rsplit("/", 1)[0] + "/bad_input_ids"
    srv = Server(trained_home, env={"MLRIG_PREDICTIONS_URL": url})
    bad_ids = ["x" * 129, "nul\u0000id", "del\u007f", "c1\u0085"]

    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=srv.url, timeout=60) as client:
            calls = []
            for round_ in range(10):
                calls += [
                    client.post("/predict", json={**WINE_ROW, "id": f"good-{round_}-{k}"})
                    for k in range(4)
                ]
                calls += [client.post("/predict", json={**WINE_ROW, "id": bad}) for bad in bad_ids]
            return list(await asyncio.gather(*calls))

    try:
        srv.wait_ready()
        answers = asyncio.run(burst())
    finally:
        srv.stop()
    good = [r for r in answers if r.status_code == 200]
    refused = [r for r in answers if r.status_code == 422]
    assert len(good) == 40 and len(refused) == 40, sorted({r.status_code for r in answers})
    assert all(r.json()["field"] == "id" for r in refused)
    store = PredictionStore(url)
    try:
        ids = set(store.read_frame()["id"])
    finally:
        store.close()
    assert ids == {p["id"] for r in good for p in r.json()["predictions"]}


def test_an_overflowing_answer_is_a_422_and_is_not_logged(tmp_path: Path) -> None:
    """Finite, in-range inputs can still overflow a model's arithmetic: the answer is refused
    for that request (JSON would carry inf as null) and nothing is logged; the app runs
    in-process (TestClient) on a real SQLite store, with a real fitted estimator."""
    import numpy as np
    from fastapi.testclient import TestClient
    from sklearn.linear_model import LinearRegression

    from mlrig.config import load_settings
    from mlrig.predictions.store import PredictionStore
    from mlrig.predictions.writer import GroupCommitWriter
    from mlrig.serving.app import create_app
    from mlrig.serving.follower import ModelFollower
    from mlrig.tracking.loading import LoadedModel

    x = np.array([[0.0, 1.0], [1.0, 0.0], [2.0, 1.0]])
    model = LinearRegression().fit(x, [1.0, 2.0, 3.0])
    model.coef_ = np.array([1e250, 1.0])  # x1 = 1e99 (accepted) -> 1e349 = inf
    loaded = LoadedModel(model, "m", "1", None, ("x1", "x2"))
    settings = load_settings(overrides={"home": tmp_path, "serving": {"poll_interval": 0}})
    follower = ModelFollower("m/1", lambda ref: loaded, lambda ref: "1", max_rows=10)
    follower.load_now()
    store = PredictionStore(settings.predictions_url)
    store.create_schema()
    with TestClient(create_app(settings, follower, store, GroupCommitWriter(store))) as client:
        r = client.post("/predict", json=[{"x1": 1, "x2": 1}, {"x1": 1e99, "x2": 1}])
        assert r.status_code == 422 and r.json()["record"] == 1
        assert "output is not finite" in r.json()["error"]
        r = client.post("/invocations", json={"instances": [[1e99, 0]]})
        assert r.status_code == 422 and r.json()["error_code"] == "BAD_REQUEST"
        assert client.post("/predict", json={"x1": 1, "x2": 1}).status_code == 200
    check = PredictionStore(settings.predictions_url)
    assert check.count() == 1
    check.close()
