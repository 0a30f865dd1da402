"""`mlrig serve` as a real uvicorn process on 127.0.0.1: protocol, validation, logging, auth."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.conftest import WINE_ROW, Server, run_cli, stored_predictions

FEATURES = list(WINE_ROW)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, trained_template: Path) -> Iterator[Server]:
    import shutil

    home = tmp_path_factory.mktemp("serving") / ".mlrig"
    shutil.copytree(trained_template, home)
    srv = Server(
        home,
        env={
            "MLRIG_ADMIN_TOKEN": "adm1n-t0ken",
            "MLRIG_SERVING__MAX_BATCH_ROWS": "50",
            "MLRIG_SERVING__MAX_BODY_BYTES": "20000",
        },
    )
    srv.wait_ready()
    yield srv
    srv.stop()


def _logged(server: Server) -> int:
    return len(stored_predictions(server.home))


def _reference(rows: list[dict[str, float]], home: Path) -> np.ndarray:
    """What MLflow's own pyfunc says for these rows."""
    import mlflow.pyfunc
    import pandas as pd

    uri = f"sqlite:///{home / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    model = mlflow.pyfunc.load_model("models:/wine-quality@champion")
    return np.asarray(model.predict(pd.DataFrame(rows, columns=FEATURES).astype("float64")))


ROWS = [WINE_ROW, {**WINE_ROW, "alcohol": 12.8, "pH": 3.1}]


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (
            {"dataframe_split": {"columns": FEATURES, "data": [list(r.values()) for r in ROWS]}},
            "application/json",
        ),
        (
            {
                "dataframe_split": {
                    "columns": FEATURES[::-1],
                    "data": [list(r.values())[::-1] for r in ROWS],
                }
            },
            "application/json",
        ),
        ({"dataframe_records": ROWS}, "application/json"),
        ({"instances": ROWS}, "application/json"),
        ({"instances": [list(r.values()) for r in ROWS]}, "application/json"),
        ({"inputs": {f: [r[f] for r in ROWS] for f in FEATURES}}, "application/json"),
        (
            {"columns": FEATURES, "data": [list(r.values()) for r in ROWS]},
            "application/json",
        ),  # seed style
        (
            ",".join(FEATURES) + "\n" + "\n".join(",".join(map(str, r.values())) for r in ROWS),
            "text/csv",
        ),
    ],
)
def test_invocations_speaks_the_mlflow_protocol(
    server: Server, body: object, content_type: str
) -> None:
    before = _logged(server)
    if isinstance(body, str):
        r = httpx.post(
            f"{server.url}/invocations", content=body, headers={"Content-Type": content_type}
        )
    else:
        r = httpx.post(f"{server.url}/invocations", json=body)
    assert r.status_code == 200, r.text
    preds = r.json()["predictions"]
    np.testing.assert_allclose(preds, _reference(ROWS, server.home), rtol=1e-9)
    assert r.headers["x-model-version"] == "1"
    assert _logged(server) == before + 2


def test_invocations_unknown_format_says_which_to_use(server: Server) -> None:
    r = httpx.post(f"{server.url}/invocations", json={"rows": [WINE_ROW]})
    assert r.status_code == 400
    assert "dataframe_split" in r.json()["message"] and r.json()["error_code"] == "BAD_REQUEST"
    r = httpx.post(
        f"{server.url}/invocations", content=b"x", headers={"Content-Type": "text/plain"}
    )
    assert r.status_code == 415


def test_predict_single_and_batch_return_ids_and_version(server: Server) -> None:
    one = httpx.post(f"{server.url}/predict", json={**WINE_ROW, "id": "ride-1"}).json()
    assert one["predictions"][0]["id"] == "ride-1"
    assert (
        one["predictions"][0]["version"] == "1" and one["predictions"][0]["model"] == "wine-quality"
    )
    batch = httpx.post(f"{server.url}/predict", json=[{**WINE_ROW, "id": 42}, ROWS[1]]).json()
    ids = [p["id"] for p in batch["predictions"]]
    assert ids[0] == "42" and re.fullmatch(r"[0-9a-f]{32}-1", ids[1])  # server-assigned
    np.testing.assert_allclose(
        [p["prediction"] for p in batch["predictions"]], _reference(ROWS, server.home)
    )
    row = stored_predictions(server.home).set_index("id").loc[ids[1]]
    assert (row["model_name"], row["model_version"], row["endpoint"]) == (
        "wine-quality",
        "1",
        "predict",
    )
    assert row["alcohol"] == 12.8 and row["pH"] == 3.1
    assert row["prediction"] == pytest.approx(batch["predictions"][1]["prediction"])
    assert row["latency_ms"] > 0


@pytest.mark.parametrize(
    ("body", "status", "text", "record", "field"),
    [
        ({k: v for k, v in WINE_ROW.items() if k != "pH"}, 422, "missing feature 'pH'", 0, "pH"),
        ({**WINE_ROW, "alcohol": "high"}, 422, "field 'alcohol' must be a number", 0, "alcohol"),
        ({**WINE_ROW, "alcohol": None}, 422, "must be a number, got null", 0, "alcohol"),
        ({**WINE_ROW, "alcohol": True}, 422, "must be a number, got bool", 0, "alcohol"),
        (
            [WINE_ROW, {**WINE_ROW, "colour": 1.0}],
            422,
            "record 1: unknown field 'colour'",
            1,
            "colour",
        ),
        ([WINE_ROW, 3], 422, "record 1: expected a JSON object", 1, None),
        ([], 400, "no records", None, None),
        ([WINE_ROW] * 51, 413, "exceeds the limit of 50", None, None),
        ([{**WINE_ROW, "id": "x"}, {**WINE_ROW, "id": "x"}], 422, "duplicate id 'x'", 1, "id"),
    ],
)
def test_bad_predict_requests_get_4xx_and_are_not_logged(
    server: Server, body: object, status: int, text: str, record: int | None, field: str | None
) -> None:
    before = _logged(server)
    r = httpx.post(f"{server.url}/predict", json=body)
    assert r.status_code == status, r.text
    out = r.json()
    assert text in out["error"]
    assert out.get("record") == record and out.get("field") == field
    assert _logged(server) == before


def test_empty_and_invalid_and_oversized_bodies(server: Server) -> None:
    before = _logged(server)
    assert httpx.post(f"{server.url}/predict", content=b"").status_code == 400
    r = httpx.post(f"{server.url}/predict", content=b"{not json")
    assert r.status_code == 400 and "not valid JSON" in r.json()["error"]
    r = httpx.post(f"{server.url}/predict", content=b"[" + b"1," * 15000 + b"1]")
    assert r.status_code == 413 and "limit of 20000 bytes" in r.json()["error"]
    assert _logged(server) == before


def test_feedback_is_joined_to_predictions_and_exported(server: Server, tmp_path: Path) -> None:
    ids = [
        p["id"]
        for p in httpx.post(f"{server.url}/predict", json=[WINE_ROW, ROWS[1]]).json()["predictions"]
    ]
    r = httpx.post(
        f"{server.url}/feedback", json=[{"id": ids[0], "actual": 5}, {"id": ids[1], "actual": 7.0}]
    )
    assert r.status_code == 200 and r.json() == {"stored": 2}
    r = httpx.post(f"{server.url}/feedback", json={"id": "no-such-id", "actual": 5})
    assert r.status_code == 404 and "no-such-id" in r.json()["error"]
    r = httpx.post(f"{server.url}/feedback", json={"id": ids[0], "actual": "five"})
    assert r.status_code == 422 and r.json()["field"] == "actual"

    out = tmp_path / "p.parquet"
    done = run_cli(
        "predictions", "export", "--home", str(server.home), "--since", "1h", "-o", str(out)
    )
    assert done.returncode == 0, done.stderr
    import pandas as pd

    frame = pd.read_parquet(out).set_index("id")
    assert frame.loc[ids[0], "actual"] == 5 and frame.loc[ids[1], "actual"] == 7
    assert frame.loc[ids[1], "alcohol"] == 12.8
    csv_out = tmp_path / "p.csv"
    future = run_cli(
        "predictions",
        "export",
        "--home",
        str(server.home),
        "--since",
        "2999-01-01",
        "--format",
        "csv",
        "-o",
        str(csv_out),
    )
    assert future.returncode == 0 and csv_out.read_text().strip() == ""
    bad = run_cli(
        "predictions",
        "export",
        "--home",
        str(server.home),
        "--since",
        "yesterday",
        "-o",
        str(csv_out),
    )
    assert bad.returncode == 2 and "--since 'yesterday'" in bad.stderr


def test_health_ready_metrics_and_docs(server: Server) -> None:
    assert httpx.get(f"{server.url}/health").json() == {
        "status": "ok",
        "model": "wine-quality",
        "version": "1",
    }
    assert httpx.get(f"{server.url}/ready").json()["ready"] is True
    httpx.post(f"{server.url}/predict", json=WINE_ROW)
    text = httpx.get(f"{server.url}/metrics").text
    assert 'mlrig_requests_total{endpoint="predict",status="200"}' in text
    assert 'mlrig_model_info{name="wine-quality",version="1"} 1.0' in text
    assert (
        "mlrig_request_latency_seconds_bucket" in text and "mlrig_predictions_logged_total" in text
    )
    spec = httpx.get(f"{server.url}/openapi.json").json()
    schema = str(spec["paths"]["/predict"]["post"]["requestBody"])
    assert all(f in schema for f in FEATURES)
    assert httpx.get(f"{server.url}/docs").status_code == 200


def test_admin_needs_the_bearer_token(server: Server) -> None:
    assert httpx.post(f"{server.url}/admin/reload").status_code == 401
    assert (
        httpx.post(
            f"{server.url}/admin/reload", headers={"Authorization": "Bearer nope"}
        ).status_code
        == 403
    )
    r = httpx.post(f"{server.url}/admin/reload", headers={"Authorization": "Bearer adm1n-t0ken"})
    assert r.status_code == 200 and r.json() == {
        "changed": False,
        "model": "wine-quality",
        "version": "1",
    }


def test_admin_is_disabled_without_a_token_and_predict_token_is_enforced(
    trained_home: Path,
) -> None:
    srv = Server(trained_home, env={"MLRIG_PREDICT_TOKEN": "p-token"})
    try:
        srv.wait_ready()
        r = httpx.post(f"{srv.url}/admin/reload", headers={"Authorization": "Bearer anything"})
        assert r.status_code == 403 and "disabled" in r.json()["error"]
        assert httpx.post(f"{srv.url}/predict", json=WINE_ROW).status_code == 401
        assert (
            httpx.post(
                f"{srv.url}/predict", json=WINE_ROW, headers={"Authorization": "Bearer x"}
            ).status_code
            == 403
        )
        ok = httpx.post(
            f"{srv.url}/predict", json=WINE_ROW, headers={"Authorization": "Bearer p-token"}
        )
        assert ok.status_code == 200
    finally:
        srv.stop()
    assert len(stored_predictions(trained_home)) == 1


def test_serve_without_a_champion_exits_with_a_clear_error(tmp_path: Path) -> None:
    done = run_cli("serve", "--home", str(tmp_path / ".mlrig"), "--port", "0", timeout=120)
    assert done.returncode == 4
    assert "model 'wine-quality': no alias 'champion'" in done.stderr
    done = run_cli("serve", "--home", str(tmp_path / ".mlrig"), "--model", "nope", timeout=120)
    assert done.returncode == 4 and "expected NAME@ALIAS" in done.stderr
