"""The server under a stalled, failing or dead prediction log, and a model failing on one
request: every request is answered (never a hang), 503s carry Retry-After, the queue stays at
its bound, /ready and /metrics say what is wrong, and nothing acknowledged is lost.

A real uvicorn server on 127.0.0.1 runs in a thread of the test process so the test can stall
or break its real store (tests/fault_stores.py) on demand.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
import uvicorn

from mlrig.config import load_settings
from mlrig.errors import StoreUnavailableError
from mlrig.predictions.store import prediction_ids
from mlrig.predictions.writer import GroupCommitWriter
from mlrig.serving.app import create_app
from mlrig.serving.follower import ModelFollower
from tests.conftest import free_port
from tests.fault_stores import CURSED, ControlledStore, picky_model


class _Crash(BaseException):
    """Escapes the writer's per-commit error handling, as a bug would."""


class _ReportStore(ControlledStore):
    """The controlled store whose monitoring-report read raises ``read_fault()`` when set, or
    blocks while ``read_gate`` is cleared."""

    read_fault: Callable[[], BaseException] | None = None

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.read_gate = threading.Event()
        self.read_gate.set()

    def monitoring_report(self, result_id: int) -> str | None:
        if self.read_fault is not None:
            raise self.read_fault()
        if not self.read_gate.wait(120):
            raise TimeoutError("the test never released the read")
        return super().monitoring_report(result_id)


@dataclass
class Served:
    url: str
    store: ControlledStore
    writer: GroupCommitWriter

    def metric(self, name: str, labels: str = "") -> float:
        text = httpx.get(f"{self.url}/metrics", timeout=30).text
        match = re.search(rf"^{re.escape(name + labels)} (\S+)$", text, re.MULTILINE)
        assert match, f"{name}{labels} not in /metrics"
        return float(match.group(1))

    def ready(self) -> httpx.Response:
        return httpx.get(f"{self.url}/ready", timeout=30)


@contextlib.contextmanager
def _serve(tmp_path: Path, serving: dict[str, Any], url: str | None = None) -> Iterator[Served]:
    overrides: dict[str, Any] = {"home": tmp_path, "serving": {"poll_interval": 0, **serving}}
    if url is not None:
        overrides["predictions"] = {"url": url}
    settings = load_settings(overrides=overrides)
    model = picky_model()
    follower = ModelFollower("m/7", lambda ref: model, lambda ref: "7", max_rows=1000)
    follower.load_now()
    store = _ReportStore(settings.predictions_url)
    store.create_schema()
    cfg = settings.serving
    writer = GroupCommitWriter(
        store,
        max_queued_rows=cfg.log_queue_rows,
        commit_timeout_ms=cfg.commit_timeout_ms,
        retry_after_s=cfg.retry_after_s,
    )
    app = create_app(settings, follower, store, writer)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            app, host="127.0.0.1", port=port, log_level="warning", lifespan="on", log_config=None
        )
    )
    thread = threading.Thread(target=server.run, name="uvicorn-under-test", daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "server did not start"
        time.sleep(0.02)
    try:
        yield Served(f"http://127.0.0.1:{port}", store, writer)
    finally:
        store.fault = None
        store.release()
        server.should_exit = True
        thread.join(60)
        assert not thread.is_alive(), "server thread did not stop"


def _row(i: int | str, x1: float = 1.0) -> dict[str, Any]:
    return {"x1": x1, "x2": 0.0, "id": str(i)}


def _eventually(check: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.05)


async def _post_all(url: str, rows: list[dict[str, Any]]) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=len(rows))
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:
        return list(await asyncio.gather(*(client.post(f"{url}/predict", json=r) for r in rows)))


def test_a_stalled_store_answers_503_with_retry_after_and_ready_names_the_writer(
    tmp_path: Path,
) -> None:
    with _serve(tmp_path, {"commit_timeout_ms": 300, "retry_after_s": 7}) as srv:
        srv.store.block()
        r = httpx.post(f"{srv.url}/predict", json=_row("r1"), timeout=30)
        assert r.status_code == 503 and r.headers["retry-after"] == "7"
        assert "not committed within 300 ms" in r.json()["error"]
        _eventually(lambda: srv.ready().status_code == 503)
        ready = srv.ready().json()
        assert ready["ready"] is False and ready["failing"] == ["writer"]
        writer = ready["checks"]["writer"]
        assert writer["alive"] is True and writer["commit_running_s"] > 0.3
        assert "stalled" in writer["problem"] and ready["checks"]["model"]["ok"] is True
        assert httpx.get(f"{srv.url}/health", timeout=30).status_code == 200  # still live
        assert srv.metric("mlrig_requests_shed_total", '{reason="timeout"}') == 1
        assert srv.metric("mlrig_requests_total", '{endpoint="predict",status="503"}') == 1

        srv.store.release()
        _eventually(lambda: srv.ready().status_code == 200)
        # at-least-once: the 503'd request was logged once the store came back ...
        assert srv.store.missing_ids("m", ["r1"]) == []
        first = _id_rows(srv.store, "r1")
        # ... and the client's retry with the same id is answered and does not re-map the id
        retry = httpx.post(f"{srv.url}/predict", json=_row("r1"), timeout=30)
        assert retry.status_code == 200 and retry.json()["predictions"][0]["id"] == "r1"
        assert _id_rows(srv.store, "r1") == first and len(first) == 1
        assert srv.ready().json()["checks"]["writer"]["queued_rows"] == 0


def _id_rows(store: ControlledStore, pid: str) -> list[tuple[str, int]]:
    with store.engine.connect() as conn:
        query = sa.select(prediction_ids.c.batch_id, prediction_ids.c.row)
        return [tuple(r) for r in conn.execute(query.where(prediction_ids.c.id == pid))]


def test_a_stalled_store_keeps_the_queue_at_its_bound_under_many_concurrent_requests(
    tmp_path: Path,
) -> None:
    bound, sent = 20, 150
    with _serve(
        tmp_path, {"log_queue_rows": bound, "max_batch_rows": bound, "commit_timeout_ms": 1000}
    ) as srv:
        srv.store.block()
        replies = asyncio.run(_post_all(srv.url, [_row(i) for i in range(sent)]))
        assert [r.status_code for r in replies] == [503] * sent  # all answered, none hung
        assert all(r.headers["retry-after"] == "1" for r in replies)
        full = [str(i) for i, r in enumerate(replies) if "full" in r.json()["error"]]
        late = [str(i) for i, r in enumerate(replies) if "not committed" in r.json()["error"]]
        assert len(full) + len(late) == sent
        # filled to the bound, never past it
        assert srv.writer.peak_queued_rows == bound == len(late)
        assert srv.metric("mlrig_log_queue_rows") == bound
        assert srv.metric("mlrig_requests_shed_total", '{reason="refused"}') == sent - bound
        assert srv.ready().json()["failing"] == ["writer"]

        srv.store.release()
        _eventually(lambda: srv.writer.queued_rows == 0)
    # refused requests were never queued; timed-out ones are logged (at-least-once)
    assert srv.store.count() == bound and srv.store.missing_ids("m", late) == []
    assert sorted(srv.store.missing_ids("m", full)) == sorted(full)


def test_stalls_under_steady_load_lose_no_acknowledged_prediction(tmp_path: Path) -> None:
    """Traffic keeps flowing while the store stalls and recovers several times: every 200 is
    in the log exactly once, every refused request is not, every timed-out one is."""
    stalls, conc = 3, 8
    with _serve(
        tmp_path, {"log_queue_rows": 30, "max_batch_rows": 30, "commit_timeout_ms": 300}
    ) as srv:
        stop = threading.Event()
        replies: dict[str, httpx.Response] = {}

        async def traffic() -> None:
            async with httpx.AsyncClient(timeout=30) as client:

                async def worker(w: int) -> None:
                    n = 0
                    while not stop.is_set():
                        pid = f"w{w}-{n}"
                        replies[pid] = await client.post(f"{srv.url}/predict", json=_row(pid))
                        n += 1

                await asyncio.gather(*(worker(w) for w in range(conc)))

        def acked_so_far() -> int:  # list(): a C-level copy, safe while the loop adds replies
            return sum(r.status_code == 200 for r in list(replies.values()))

        load = threading.Thread(target=lambda: asyncio.run(traffic()))
        load.start()
        try:
            for _ in range(stalls):
                _eventually(lambda: acked_so_far() >= 20)
                srv.store.block()
                _eventually(lambda: srv.writer.timed_out + srv.writer.refused >= 10)
                srv.store.release()
                before = acked_so_far()
                _eventually(lambda n=before: acked_so_far() > n)
        finally:
            stop.set()
            srv.store.release()
            load.join(60)
        _eventually(lambda: srv.writer.queued_rows == 0)
    statuses = {r.status_code for r in replies.values()}
    assert statuses <= {200, 503}, statuses
    acked = [pid for pid, r in replies.items() if r.status_code == 200]
    late = [pid for pid, r in replies.items() if "not committed" in r.text]
    refused = [pid for pid, r in replies.items() if "full" in r.text]
    assert len(acked) >= 20 + stalls and late, (len(acked), len(late), len(refused))
    frame = srv.store.read_frame()
    logged = frame["id"].tolist()
    assert len(logged) == len(set(logged))  # nothing twice
    assert set(acked) | set(late) == set(logged)  # acked: lost = 0; timed out: at-least-once
    assert not set(refused) & set(logged)


def test_a_failing_store_answers_503_and_the_server_recovers_when_it_is_back(
    tmp_path: Path,
) -> None:
    with _serve(tmp_path, {}) as srv:
        srv.store.fault = lambda: sa.exc.OperationalError(
            "INSERT …", {"id": "x"}, OSError("disk I/O error")
        )
        r = httpx.post(f"{srv.url}/predict", json=_row("lost"), timeout=30)
        assert r.status_code == 503 and r.headers["retry-after"] == "1"
        assert r.json() == {"error": "prediction store: write failed (OperationalError)"}
        mlflow_style = httpx.post(f"{srv.url}/invocations", json={"instances": [[1, 0]]})
        assert mlflow_style.status_code == 503 and mlflow_style.headers["retry-after"] == "1"
        assert srv.metric("mlrig_log_commit_failures_total") == 2
        ready = srv.ready()
        assert ready.status_code == 200  # the writer is alive and empty: not a reason to leave
        assert ready.json()["checks"]["writer"]["last_error"] == "OperationalError: disk I/O error"

        srv.store.fault = None
        ok = httpx.post(f"{srv.url}/predict", json=_row("kept"), timeout=30)
        assert ok.status_code == 200
    assert srv.store.missing_ids("m", ["lost", "kept"]) == ["lost"]  # refused means not logged


def test_a_dead_writer_thread_answers_503_at_once_and_ready_reports_it(tmp_path: Path) -> None:
    # a deadline far beyond the client's timeout: a hang would fail the request, not pass slowly
    with _serve(tmp_path, {"commit_timeout_ms": 600_000}) as srv:
        srv.store.fault = lambda: _Crash("escaped the commit handler")
        replies = [httpx.post(f"{srv.url}/predict", json=_row(i), timeout=20) for i in range(4)]
        assert [r.status_code for r in replies] == [503] * 4
        assert all("writer is not running" in r.json()["error"] for r in replies)
        assert all(r.headers["retry-after"] == "1" for r in replies)
        ready = srv.ready()
        assert ready.status_code == 503 and ready.json()["failing"] == ["writer"]
        writer = ready.json()["checks"]["writer"]
        assert writer["alive"] is False and "died: _Crash" in writer["last_error"]
        assert srv.metric("mlrig_log_writer_alive") == 0
        live = httpx.get(f"{srv.url}/health", timeout=30)  # liveness: only a restart helps now
        assert live.status_code == 503 and live.json()["status"] == "failing"
        assert "died: _Crash" in live.json()["problem"]
        assert srv.metric("mlrig_requests_shed_total", '{reason="refused"}') == 3
    assert srv.store.count() == 0


def test_an_estimator_failure_answers_only_its_own_request_with_a_500(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="mlrig")
    rows = [_row(i, x1=float(i)) for i in range(30)]
    rows[13] = _row("bad", x1=CURSED)
    with _serve(tmp_path, {}) as srv:
        replies = asyncio.run(_post_all(srv.url, rows))
    by_id = {row["id"]: r for row, r in zip(rows, replies, strict=True)}
    bad = by_id.pop("bad")
    assert bad.status_code == 500 and bad.headers["content-type"] == "application/json"
    assert "ValueError" in bad.json()["error"] and "model m version 7" in bad.json()["error"]
    assert "Traceback" not in bad.text
    for pid, r in by_id.items():
        assert r.status_code == 200, (pid, r.text)
        assert r.json()["predictions"][0]["prediction"] == pytest.approx(2 * float(pid))
    assert srv.store.missing_ids("m", list(by_id)) == [] and srv.store.count() == 29
    assert srv.store.missing_ids("m", ["bad"]) == ["bad"]
    logged = [
        rec for rec in caplog.records if rec.exc_info and "model m v7 failed" in rec.getMessage()
    ]
    assert logged and isinstance(logged[0].exc_info[1], ValueError)  # type: ignore[index]


def test_a_store_fault_on_a_read_route_is_503_and_a_bug_is_a_500_json(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR)
    with _serve(tmp_path, {"retry_after_s": 5}) as srv:
        assert isinstance(srv.store, _ReportStore)
        srv.store.read_fault = lambda: StoreUnavailableError("prediction store: cannot read")
        down = httpx.get(f"{srv.url}/monitoring/report/1", timeout=30)
        assert down.status_code == 503 and down.headers["retry-after"] == "5"
        assert down.json() == {"error": "prediction store: cannot read"}
        srv.store.read_fault = lambda: KeyError("a bug")
        bug = httpx.get(f"{srv.url}/monitoring/report/1", timeout=30)
        assert bug.status_code == 500 and bug.headers["content-type"] == "application/json"
        assert bug.json() == {"error": "internal error (KeyError) on /monitoring/report/1"}
        # the server logs the traceback just after answering
        _eventually(
            lambda: any(r.exc_info and isinstance(r.exc_info[1], KeyError) for r in caplog.records)
        )
        srv.store.read_fault = None
        missing = httpx.get(f"{srv.url}/monitoring/report/1", timeout=30)
        assert missing.status_code == 404


def test_a_stalled_store_read_answers_503_at_the_deadline(tmp_path: Path) -> None:
    with _serve(tmp_path, {"commit_timeout_ms": 300, "retry_after_s": 2}) as srv:
        assert isinstance(srv.store, _ReportStore)
        srv.store.read_gate.clear()
        try:
            r = httpx.get(f"{srv.url}/monitoring/report/1", timeout=30)
            assert r.status_code == 503 and r.headers["retry-after"] == "2"
            assert r.json() == {"error": "prediction store: no answer within 300 ms"}
        finally:
            srv.store.read_gate.set()
        assert httpx.get(f"{srv.url}/monitoring/report/1", timeout=30).status_code == 404


def _fresh_database(postgres_url: str, name: str) -> str:
    admin = sa.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        conn.execute(sa.text(f"CREATE DATABASE {name}"))
    admin.dispose()
    return postgres_url.rsplit("/", 1)[0] + f"/{name}"


def test_a_locked_postgresql_table_answers_503_then_logs_the_request_at_least_once(
    tmp_path: Path, postgres_url: str
) -> None:
    """A real stall: another session holds an exclusive lock on the log's table."""
    url = _fresh_database(postgres_url, "overload_test")
    with _serve(tmp_path, {"commit_timeout_ms": 500}, url=url) as srv:
        assert httpx.post(f"{srv.url}/predict", json=_row("warm"), timeout=30).status_code == 200
        locker = sa.create_engine(url)
        try:
            with locker.connect() as conn, conn.begin():
                conn.exec_driver_sql("LOCK TABLE prediction_requests IN ACCESS EXCLUSIVE MODE")
                r = httpx.post(f"{srv.url}/predict", json=_row("r1"), timeout=30)
                assert r.status_code == 503 and r.headers["retry-after"] == "1"
                ready = srv.ready()
                assert ready.status_code == 503 and ready.json()["failing"] == ["writer"]
        finally:
            locker.dispose()
        _eventually(lambda: srv.ready().status_code == 200)
        assert srv.store.missing_ids("m", ["r1"]) == []  # committed once the lock went: at-least-once
        first = _id_rows(srv.store, "r1")
        retry = httpx.post(f"{srv.url}/predict", json=_row("r1"), timeout=30)
        assert retry.status_code == 200
        assert _id_rows(srv.store, "r1") == first and len(first) == 1  # the id keeps the first
