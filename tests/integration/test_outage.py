"""A PostgreSQL outage while `mlrig serve` answers: every request still gets 200, its log
records wait in the local spool, and once the database is back every acknowledged id is in the
store exactly once — also across a `kill -9` with a non-empty spool. Only a spool that cannot
be written answers 503, naming it. A database down at start-up is a clear error, no password.

One PostgreSQL cluster of the module's own (the tests stop and start it), a password in every
URL (trust auth accepts any): it must never be printed.
"""

from __future__ import annotations

import re
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from mlrig.predictions.store import PredictionStore
from tests.conftest import WINE_ROW, Server, run_cli
from tests.services import PgCluster, fresh_database

pytestmark = pytest.mark.slow

PASSWORD = "pg-s3cret-Outage"
MODEL = "wine-quality"


class _Db:
    """The module's cluster, and whether it is up (tests leave it up)."""

    def __init__(self, root: Path) -> None:
        self.cluster = PgCluster(root)
        self.up = False

    def start(self) -> None:
        if not self.up:
            self.cluster.start()
            self.up = True

    def stop(self) -> None:
        self.cluster.stop("immediate")  # like a crash: connections cut, no checkpoint
        self.up = False

    def database(self, name: str) -> str:
        """A fresh database, its URL with a password in it."""
        url = fresh_database(self.cluster.url, name)
        return url.replace("postgres@", f"postgres:{PASSWORD}@", 1)


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_Db]:
    d = _Db(tmp_path_factory.mktemp("outage-pg"))
    d.start()
    try:
        yield d
    finally:
        d.stop()


def _eventually(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"{what}: not reached in {timeout} s"
        time.sleep(0.2)


def _metric(url: str, name: str) -> float:
    text = httpx.get(f"{url}/metrics", timeout=30).text
    match = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    assert match, f"{name} not in /metrics"
    return float(match.group(1))


def _spool_check(url: str) -> tuple[int, dict[str, Any]]:
    r = httpx.get(f"{url}/ready", timeout=30)
    return r.status_code, r.json()["checks"]["spool"]


def _drained(url: str) -> bool:
    status, spool = _spool_check(url)
    return status == 200 and spool["batches"] == 0 and spool["state"] == "empty"


class _Load:
    """Client threads sending one-row /predict requests with their own ids until stopped."""

    def __init__(self, url: str, threads: int = 4) -> None:
        self.url = url
        self.acked: list[str] = []
        self.failed: list[tuple[str, int | str]] = []
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, args=(k,), daemon=True) for k in range(threads)
        ]

    def _run(self, k: int) -> None:
        with httpx.Client(timeout=30) as client:
            i = 0
            while not self._stop.is_set():
                pid = f"t{k}-{i}"
                i += 1
                try:
                    r = client.post(f"{self.url}/predict", json={**WINE_ROW, "id": pid})
                except httpx.HTTPError as exc:
                    self.failed.append((pid, type(exc).__name__))
                    continue
                if r.status_code == 200:
                    self.acked.append(r.json()["predictions"][0]["id"])
                else:
                    self.failed.append((pid, r.status_code))

    def __enter__(self) -> _Load:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(60)


def _exactly_once(url: str, acked: list[str]) -> None:
    store = PredictionStore(url.replace(f":{PASSWORD}", ""))
    try:
        missing = store.missing_ids(MODEL, acked)
        assert not missing, f"{len(missing)} acknowledged ids lost, e.g. {missing[:3]}"
        with store.engine.connect() as conn:
            rows = conn.execute(
                sa.text(
                    "SELECT coalesce(sum(n_rows), 0), count(*) FROM prediction_requests "
                    "WHERE model_name = :m"
                ),
                {"m": MODEL},
            ).one()
            ids = conn.execute(
                sa.text("SELECT count(*) FROM prediction_ids WHERE model_name = :m"), {"m": MODEL}
            ).scalar_one()
    finally:
        store.close()
    assert (int(rows[0]), int(rows[1]), int(ids)) == (len(acked),) * 3, "duplicates in the log"


def test_an_outage_under_load_then_a_kill_9_with_a_full_spool_lose_and_duplicate_nothing(
    db: _Db, trained_home: Path
) -> None:
    url = db.database("outage_load")
    env = {"MLRIG_PREDICTIONS_URL": url}
    srv = Server(trained_home, env=env)
    servers = [srv]
    try:
        srv.wait_ready()
        with _Load(srv.url) as load:
            _eventually(lambda: len(load.acked) >= 100, 60, "load before the outage")
            db.stop()
            at_stop = len(load.acked)
            time.sleep(4)  # serving from the spool
            status, spool = _spool_check(srv.url)
            assert status == 200, "spooling must keep the server ready"
            assert spool["ok"] and "database unreachable since" in spool["state"], spool
            assert spool["batches"] > 0 and _metric(srv.url, "mlrig_spool_rows") > 0
            served_down = len(load.acked) - at_stop
            peak = _spool_check(srv.url)[1]["rows"]
            db.start()
            back = time.monotonic()
            time.sleep(2)  # load continues while the spool drains
        _eventually(lambda: _drained(srv.url), 60, "spool replayed")
        print(  # the figure docs/reliability.md quotes (pytest -s)
            f"outage: {served_down} requests answered 200 in 4 s down, {peak} rows spooled, "
            f"drained {time.monotonic() - back:.1f} s after the restart, "
            f"{len(load.acked)} acknowledged in all"
        )
        assert _metric(srv.url, "mlrig_spool_replayed_batches_total") > 0
        assert not load.failed, f"{len(load.failed)} requests not answered 200: {load.failed[:5]}"
        assert served_down > 50, f"only {served_down} requests answered during the outage"
        _exactly_once(url, load.acked)

        # a second outage, and the server dies (kill -9) before the database is back
        db.stop()
        acked = list(load.acked)
        with httpx.Client(timeout=30) as client:
            for i in range(40):
                r = client.post(f"{srv.url}/predict", json={**WINE_ROW, "id": f"k-{i}"})
                assert r.status_code == 200, r.text
                acked.append(r.json()["predictions"][0]["id"])
        assert _spool_check(srv.url)[1]["rows"] == 40
        srv.stop(signal.SIGKILL)
        db.start()
        again = Server(trained_home, env=env)  # its next start replays the spool
        servers.append(again)
        try:
            again.wait_ready()
            _eventually(lambda: _drained(again.url), 60, "spool replayed after the restart")
        finally:
            again.stop()
        _exactly_once(url, acked)
    finally:
        db.start()
        srv.stop()
    for server in servers:
        assert PASSWORD not in Path(server.log.name).read_text()


def test_an_unwritable_spool_with_the_database_down_answers_503_naming_it(
    db: _Db, trained_home: Path, tmp_path: Path
) -> None:
    url = db.database("outage_nospool")
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the spool directory should be")
    env = {"MLRIG_PREDICTIONS_URL": url, "MLRIG_PREDICTIONS__SPOOL_DIR": str(blocker / "spool")}
    srv = Server(trained_home, env=env)
    try:
        srv.wait_ready()
        db.stop()
        r = httpx.post(f"{srv.url}/predict", json={**WINE_ROW, "id": "lost-1"}, timeout=30)
        assert r.status_code == 503 and r.headers["retry-after"], r.text
        error = r.json()["error"]
        assert str(blocker / "spool") in error and "Not a directory" in error, error
        assert "unreachable" in error and PASSWORD not in error, error
        ready = httpx.get(f"{srv.url}/ready", timeout=30)
        assert ready.status_code == 503 and "spool" in ready.json()["failing"], ready.text
        db.start()
        ok = httpx.post(f"{srv.url}/predict", json={**WINE_ROW, "id": "ok-1"}, timeout=30)
        assert ok.status_code == 200, ok.text
        assert httpx.get(f"{srv.url}/ready", timeout=30).status_code == 200
    finally:
        db.start()
        srv.stop()
    store = PredictionStore(url.replace(f":{PASSWORD}", ""))
    try:
        assert store.missing_ids(MODEL, ["lost-1", "ok-1"]) == ["lost-1"]  # nothing half-logged
    finally:
        store.close()
    assert PASSWORD not in Path(srv.log.name).read_text()


def test_the_database_down_at_start_is_a_clear_error_without_the_password(
    db: _Db, trained_home: Path
) -> None:
    url = db.database("outage_start")
    db.stop()
    try:
        started = time.monotonic()
        done = run_cli(
            "serve", "--home", str(trained_home), "--port", "0",
            env={"MLRIG_PREDICTIONS_URL": url}, timeout=120,
        )  # fmt: skip
        took = time.monotonic() - started
    finally:
        db.start()
    out = done.stdout + done.stderr
    assert done.returncode == 5, out
    assert PASSWORD not in out, out
    assert f"postgres:***@127.0.0.1:{db.cluster.port}/outage_start" in out, out
    assert took < 60, f"took {took:.0f} s to fail"
