"""The server under stress: alias moves under concurrent load, and kill -9 mid-load."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import WINE_ROW, Server, run_cli, stored_ids

pytestmark = pytest.mark.slow


async def _hammer(
    url: str, stop: threading.Event, results: list[tuple[int, str | None]], conc: int = 16
) -> None:
    async with httpx.AsyncClient(timeout=30) as client:

        async def worker() -> None:
            while not stop.is_set():
                try:
                    r = await client.post(f"{url}/predict", json=WINE_ROW)
                    results.append(
                        (
                            r.status_code,
                            r.json()["predictions"][0]["version"] if r.status_code == 200 else None,
                        )
                    )
                except httpx.HTTPError as exc:
                    results.append((0, type(exc).__name__))

        await asyncio.gather(*(worker() for _ in range(conc)))


def test_champion_moves_are_picked_up_with_zero_failed_requests(trained_home: Path) -> None:
    srv = Server(trained_home, args=("--poll-interval", "0.5"))
    try:
        srv.wait_ready()
        results: list[tuple[int, str | None]] = []
        stop = threading.Event()
        load = threading.Thread(target=lambda: asyncio.run(_hammer(srv.url, stop, results)))
        load.start()
        time.sleep(1)
        done = run_cli(
            "run", "--home", str(trained_home), "--alpha", "0.01", "--l1-ratio", "0.1", "--quiet"
        )
        assert done.returncode == 0 and "champion=yes" in done.stdout, done.stdout + done.stderr
        deadline = time.monotonic() + 60
        while (
            time.monotonic() < deadline and httpx.get(f"{srv.url}/health").json()["version"] != "2"
        ):
            time.sleep(0.2)
        time.sleep(1)
        stop.set()
        load.join(60)
        assert httpx.get(f"{srv.url}/health").json()["version"] == "2"
        statuses = {s for s, _ in results}
        assert statuses == {200}, f"failures during swap: {[r for r in results if r[0] != 200][:5]}"
        versions = [v for _, v in results]
        assert versions[0] == "1" and versions[-1] == "2" and len(results) > 100
        # once a request saw version 2, later ones never go back
        assert "1" not in versions[versions.index("2") + 16 :]
    finally:
        srv.stop()


async def _fire(url: str, n: int, conc: int, acked: list[str]) -> None:
    sem = asyncio.Semaphore(conc)
    async with httpx.AsyncClient(timeout=10) as client:

        async def one(i: int) -> None:
            async with sem:
                try:
                    r = await client.post(f"{url}/predict", json={**WINE_ROW, "id": f"req-{i}"})
                except httpx.HTTPError:
                    return
                if r.status_code == 200:
                    acked.append(r.json()["predictions"][0]["id"])

        await asyncio.gather(*(one(i) for i in range(n)))


def test_every_acknowledged_prediction_survives_kill_9(trained_home: Path) -> None:
    srv = Server(trained_home)
    srv.wait_ready()
    acked: list[str] = []
    load = threading.Thread(target=lambda: asyncio.run(_fire(srv.url, 20000, 32, acked)))
    load.start()
    deadline = time.monotonic() + 60
    while len(acked) < 1500 and time.monotonic() < deadline:
        time.sleep(0.05)
    srv.stop(signal.SIGKILL)  # mid-load, no shutdown hooks
    load.join(120)
    assert 1500 <= len(acked) < 20000, len(acked)
    stored = stored_ids(trained_home)
    lost = set(acked) - stored
    assert not lost, f"{len(lost)} acknowledged predictions lost, e.g. {sorted(lost)[:3]}"
    restarted = Server(trained_home)  # the store opens cleanly after the crash and keeps logging
    try:
        restarted.wait_ready()
        assert (
            httpx.post(f"{restarted.url}/predict", json={**WINE_ROW, "id": "after"}).status_code
            == 200
        )
    finally:
        restarted.stop()
    assert "after" in stored_ids(trained_home)


def test_two_workers_share_one_store_without_losing_predictions(trained_home: Path) -> None:
    srv = Server(trained_home, args=("--workers", "2"))
    try:
        srv.wait_ready()
        acked: list[str] = []
        asyncio.run(_fire(srv.url, 400, 16, acked))
    finally:
        srv.stop()
    assert len(acked) == 400
    stored = stored_ids(trained_home)
    assert set(acked) <= stored


def test_a_prediction_log_locked_by_another_process_answers_503_not_a_hang(
    trained_home: Path,
) -> None:
    """A real stall: another process holds SQLite's write lock. The request is answered 503 +
    Retry-After at its commit deadline (settings from the environment), /ready says the writer
    is stalled, and once the lock is gone the server logs again."""
    srv = Server(
        trained_home,
        env={"MLRIG_SERVING__COMMIT_TIMEOUT_MS": "500", "MLRIG_SERVING__RETRY_AFTER_S": "3"},
    )
    try:
        srv.wait_ready()
        db = sqlite3.connect(trained_home / "predictions.db", isolation_level=None, timeout=30)
        try:
            db.execute("BEGIN EXCLUSIVE")
            r = httpx.post(f"{srv.url}/predict", json={**WINE_ROW, "id": "locked"}, timeout=30)
            assert r.status_code == 503 and r.headers["retry-after"] == "3", r.text
            assert "not committed within 500 ms" in r.json()["error"]
            ready = httpx.get(f"{srv.url}/ready", timeout=30)
            assert ready.status_code == 503 and ready.json()["failing"] == ["writer"], ready.text
            assert "stalled" in ready.json()["checks"]["writer"]["problem"]
        finally:
            db.execute("ROLLBACK")
            db.close()
        deadline = time.monotonic() + 60
        while httpx.get(f"{srv.url}/ready", timeout=30).status_code != 200:
            assert time.monotonic() < deadline, "the server did not recover after the lock"
            time.sleep(0.2)
        after = httpx.post(f"{srv.url}/predict", json={**WINE_ROW, "id": "after"}, timeout=30)
        assert after.status_code == 200
    finally:
        srv.stop()
    assert "after" in stored_ids(trained_home)


def test_an_idle_keep_alive_connection_outlives_a_client_pool_expiry(trained_home: Path) -> None:
    # uvicorn's own default (5 s) equals httpx's pool expiry: a client reusing a connection the
    # server is closing gets a reset. The server keeps idle connections longer (serving.keep_alive).
    import socket

    srv = Server(trained_home, env={"MLRIG_SERVING__KEEP_ALIVE": "30"})
    try:
        srv.wait_ready()
        request = f"GET /health HTTP/1.1\r\nHost: 127.0.0.1:{srv.port}\r\n\r\n".encode()
        with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as conn:
            reader = conn.makefile("rb")

            def answer() -> bytes:  # one whole response: headers may arrive apart from the body
                status = reader.readline()
                length = 0
                while (line := reader.readline()) not in (b"\r\n", b""):
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                reader.read(length)
                return status

            conn.sendall(request)
            assert answer().startswith(b"HTTP/1.1 200")
            time.sleep(7)  # idle past 5 s: the old default would have closed it
            conn.sendall(request)
            assert answer().startswith(b"HTTP/1.1 200")
    finally:
        srv.stop()
