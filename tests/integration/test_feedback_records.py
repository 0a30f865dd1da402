"""/feedback against a real store on both backends (SQLite file, session PostgreSQL): ids are
per model, bad or duplicated ids are refused with nothing stored, a store fault is a 503 whose
log names the fault and never the ids or values, and a chunked body over the limit is refused
by a real uvicorn server before it has all been sent."""

from __future__ import annotations

import contextlib
import logging
import re
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sklearn.linear_model import LinearRegression

from mlrig.config import load_settings
from mlrig.predictions.labelled import read_labelled
from mlrig.predictions.store import PredictionStore
from mlrig.predictions.window import read_window
from mlrig.predictions.writer import GroupCommitWriter
from mlrig.serving.app import create_app
from mlrig.serving.follower import ModelFollower
from mlrig.tracking.loading import LoadedModel
from tests.conftest import free_port

FEATURES = ("x1", "x2")
LIMIT = 2048  # serving.max_body_bytes of every app here


@pytest.fixture
def url(store_url: str) -> str:
    return store_url


def _app(url: str, home: Path, model_name: str, store: PredictionStore | None = None) -> TestClient:
    """The real app serving a two-feature linear model called ``model_name`` (y = 2·x1 + 10·x2)."""
    frame = pd.DataFrame({"x1": [0.0, 1.0, 2.0, 3.0], "x2": [1.0, 0.0, 1.0, 0.0]})
    fitted = LinearRegression().fit(frame, 2 * frame["x1"] + 10 * frame["x2"])
    model = LoadedModel(fitted, model_name, "1", None, FEATURES)
    settings = load_settings(
        overrides={
            "home": home,
            "predictions": {"url": url},
            "serving": {"poll_interval": 0, "max_body_bytes": LIMIT},
        }
    )
    follower = ModelFollower(f"{model_name}/1", lambda ref: model, lambda ref: "1", max_rows=100)
    follower.load_now()
    store = store or PredictionStore(url)
    store.create_schema()
    return TestClient(create_app(settings, follower, store, GroupCommitWriter(store)))


def _reader(url: str) -> PredictionStore:
    store = PredictionStore(url)
    store.create_schema()
    return store


def test_ids_are_per_model_from_predict_to_export(url: str, tmp_path: Path) -> None:
    with _app(url, tmp_path, "m") as m, _app(url, tmp_path, "n") as n:
        # both clients choose id "42" (and a numeric 7) for their own model's prediction
        assert m.post("/predict", json=[{"x1": 1, "x2": 0, "id": "42"}]).status_code == 200
        assert n.post("/predict", json=[{"x1": 3, "x2": 1, "id": "42"}]).status_code == 200
        assert n.post("/predict", json=[{"x1": 2, "x2": 2, "id": "n-only"}]).status_code == 200
        assert m.post("/feedback", json={"id": "42", "actual": 1.5}).status_code == 200
        assert n.post("/feedback", json={"id": "42", "actual": 2.5}).status_code == 200
        unknown = m.post("/feedback", json={"id": "n-only", "actual": 9})  # n's id, not m's
        assert unknown.status_code == 404 and unknown.json()["ids"] == ["n-only"]
        # a generated id (<batch>-<row>) belongs to the model that answered it, too
        generated = m.post("/predict", json={"x1": 0, "x2": 0}).json()["predictions"][0]["id"]
        assert n.post("/feedback", json={"id": generated, "actual": 1}).status_code == 404
    store = _reader(url)
    try:
        by_model = {name: read_labelled(store, name) for name in ("m", "n")}
        assert by_model["m"][["id", "x1", "actual"]].values.tolist() == [["42", 1.0, 1.5]]
        assert by_model["n"][["id", "x1", "actual"]].values.tolist() == [["42", 3.0, 2.5]]
        for name, actual in (("m", 1.5), ("n", 2.5)):
            part = read_window(store, name).parts[0]  # rows in no order (MySQL: by batch id)
            assert part.actual[part.labelled].tolist() == [actual]
        frame = store.read_frame().set_index(["model_name", "id"])
        assert frame.loc[("m", "42"), "actual"] == 1.5
        assert frame.loc[("n", "42"), "actual"] == 2.5
        assert pd.isna(frame.loc[("n", "n-only"), "actual"])
        assert len(frame) == 4  # four predictions, none duplicated by the join
        assert store.feedback_count() == 2 and store.feedback_count("m") == 1
    finally:
        store.close()


@pytest.mark.parametrize(
    ("bad_id", "words"),
    [("x" * 129, "got 129"), ("a\u0000b", "U+0000"), ("", "empty"), (True, "got bool")],
)
def test_a_bad_id_is_a_422_naming_it_and_nothing_is_stored(
    url: str, tmp_path: Path, bad_id: object, words: str
) -> None:
    """On PostgreSQL a NUL byte or a 129-character id used to be a 503 (DataError)."""
    with _app(url, tmp_path, "m") as client:
        assert client.post("/predict", json={"x1": 1, "x2": 0, "id": "ok"}).status_code == 200
        body = [{"id": "ok", "actual": 1.0}, {"id": bad_id, "actual": 2.0}]
        r = client.post("/feedback", json=body)
        assert r.status_code == 422, r.text
        assert r.json()["record"] == 1 and r.json()["field"] == "id"
        assert words in r.json()["error"]
        # the store was not touched and still answers
        assert client.post("/feedback", json=body[:1]).json() == {"stored": 1}
    store = _reader(url)
    try:
        assert store.feedback_count() == 1
    finally:
        store.close()


def test_the_same_id_twice_in_one_request_is_a_422_and_stores_nothing(
    url: str, tmp_path: Path
) -> None:
    """It used to reach the store and fail on the primary key: 503 on PostgreSQL."""
    with _app(url, tmp_path, "m") as client:
        client.post("/predict", json=[{"x1": 1, "x2": 0, "id": "a"}, {"x1": 2, "x2": 0, "id": "b"}])
        r = client.post(
            "/feedback",
            json=[{"id": "a", "actual": 1}, {"id": "b", "actual": 2}, {"id": "a", "actual": 3}],
        )
        assert r.status_code == 422 and r.json()["record"] == 2
        assert "'a'" in r.json()["error"]
        # a second request for the same id is a correction: it replaces the first value
        assert client.post("/feedback", json={"id": "a", "actual": 1}).status_code == 200
        assert client.post("/feedback", json={"id": "a", "actual": 4}).status_code == 200
    store = _reader(url)
    try:
        assert read_labelled(store, "m")[["id", "actual"]].values.tolist() == [["a", 4.0]]
    finally:
        store.close()


def _refuse_large_actuals(url: str) -> None:
    """Make the real store fail on demand: a trigger (SQLite) or CHECK constraint (PostgreSQL)
    rejects feedback whose actual is over 100, so the real add_feedback meets a real driver
    error whose text carries the row it refused."""
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            conn.exec_driver_sql(
                "CREATE TRIGGER refuse BEFORE INSERT ON feedback WHEN NEW.actual > 100 "
                "BEGIN SELECT RAISE(ABORT, 'refused'); END"
            )
        else:
            conn.exec_driver_sql("ALTER TABLE feedback ADD CONSTRAINT refuse CHECK (actual <= 100)")
    engine.dispose()


def test_a_store_fault_is_a_503_logged_without_ids_or_values(
    url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    secret_id, secret_actual = "ride-7f3a-secret", 1234.5678
    with _app(url, tmp_path, "m") as client:
        assert (
            client.post("/predict", json={"x1": 9.25, "x2": 0, "id": secret_id}).status_code == 200
        )
        _refuse_large_actuals(url)
        with caplog.at_level(logging.DEBUG):
            r = client.post("/feedback", json={"id": secret_id, "actual": secret_actual})
        assert r.status_code == 503 and r.json() == {"error": "prediction store unavailable"}
        # the fault passed and the store still takes good feedback
        assert client.post("/feedback", json={"id": secret_id, "actual": 5}).status_code == 200
    store = _reader(url)
    try:  # the refused value left nothing behind; the retry is stored once
        assert store.read_frame()[["id", "actual"]].values.tolist() == [[secret_id, 5.0]]
        assert store.feedback_count() == 1
    finally:
        store.close()
    logged = [rec.getMessage() for rec in caplog.records if "feedback" in rec.getMessage()]
    # the fault's class (SQLite: IntegrityError, psycopg: CheckViolation, MariaDB: SQLSTATE
    # 23000) and what failed
    assert any(
        re.search(r"cannot store feedback \((IntegrityError|CheckViolation|\w+\[23000\])", line)
        for line in logged
    ), logged
    for line in (rec.getMessage() for rec in caplog.records):
        assert secret_id not in line and "1234.5678" not in line
        assert "INSERT" not in line and "9.25" not in line


class _BuggyStore(PredictionStore):
    """A real store with a programming error in one method (a TypeError, not a DB fault)."""

    def missing_ids(self, model_name: str, ids: object) -> list[str]:
        raise TypeError("a bug, not an outage")


def test_a_bug_is_a_500_not_disguised_as_a_store_outage(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'p.db'}"
    app = _app(url, tmp_path, "m", _BuggyStore(url)).app
    with TestClient(app, raise_server_exceptions=False) as client:
        r = client.post("/feedback", json={"id": "a", "actual": 1})
    assert r.status_code == 500  # before: 503 "store unavailable", hiding the bug


@contextlib.contextmanager
def _uvicorn(client: TestClient) -> Iterator[int]:
    """The app behind ``client`` on a real uvicorn server on 127.0.0.1 (in a thread)."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(client.app, host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(30)


def _status(sock: socket.socket) -> int:
    data = b""
    while b"\r\n" not in data:
        more = sock.recv(4096)
        if not more:
            break
        data += more
    return int(data.split(b" ", 2)[1])


def test_a_chunked_body_over_the_limit_is_refused_before_it_is_all_sent(tmp_path: Path) -> None:
    """The client sends chunk after chunk and never the final one: a server that read the body
    whole before checking its size would never answer."""
    url = f"sqlite:///{tmp_path / 'p.db'}"
    with (
        _uvicorn(_app(url, tmp_path, "m")) as port,
        socket.create_connection(("127.0.0.1", port), timeout=60) as sock,
    ):
        sock.sendall(
            b"POST /feedback HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        chunk = b"[" + b" " * 511
        for _ in range(LIMIT // len(chunk) + 1):  # just over the limit; the body never ends
            sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        assert _status(sock) == 413
    store = _reader(url)
    try:
        assert store.feedback_count() == 0
    finally:
        store.close()
