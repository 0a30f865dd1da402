"""Two `mlrig serve` replicas log to one PostgreSQL store under load; one is killed with
``kill -9`` mid-load. Every acknowledged id (HTTP 200) is in the store exactly once; requests
that got no answer may or may not be there. The killed replica is started again on its own home
before the check, so whatever it acknowledged from a local spool (if one is configured) is
replayed, as it would be in production."""

from __future__ import annotations

import shutil
import signal
import threading
import time
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from mlrig.predictions.store import PredictionStore
from tests.conftest import WINE_ROW, Server
from tests.services import fresh_database

CLIENTS = 4
LOAD_S = 6.0  # seconds of load in all
KILL_AT_S = 2.0  # replica A is killed this far into the load


def _replica(template: Path, root: Path, url: str) -> Server:
    home = root / ".mlrig"
    shutil.copytree(template, home)
    return Server(home, env={"MLRIG_PREDICTIONS_URL": url})


def _load(urls: list[str], stop: threading.Event, name: str, acked: dict[str, str]) -> None:
    """Send one-row /predict requests with fresh client ids, alternating replicas; record the
    acknowledged ids (with the replica that answered). Failures are not retried: an id is sent
    once, so any second row for it would be the store's or the server's doing."""
    n = 0
    with httpx.Client(timeout=10) as client:
        while not stop.is_set():
            url, n = urls[n % len(urls)], n + 1
            pid = f"{name}-{n}"
            try:
                r = client.post(f"{url}/predict", json={**WINE_ROW, "id": pid})
            except httpx.HTTPError:
                continue  # no answer: may or may not be logged
            if r.status_code == 200:
                acked[pid] = url


@pytest.mark.slow
def test_acknowledged_ids_survive_a_killed_replica_exactly_once(
    trained_template: Path, postgres_url: str, tmp_path: Path
) -> None:
    url = fresh_database(postgres_url, "replicas")
    a = _replica(trained_template, tmp_path / "a", url)
    b = _replica(trained_template, tmp_path / "b", url)
    restarted: Server | None = None
    try:
        a.wait_ready()
        b.wait_ready()
        stop = threading.Event()
        acked: list[dict[str, str]] = [{} for _ in range(CLIENTS)]
        threads = [
            threading.Thread(target=_load, args=([a.url, b.url], stop, f"c{k}", acked[k]))
            for k in range(CLIENTS)
        ]
        for t in threads:
            t.start()
        time.sleep(KILL_AT_S)
        before_kill = sum(len(d) for d in acked)
        a.stop(signal.SIGKILL)
        time.sleep(LOAD_S - KILL_AT_S)
        stop.set()
        for t in threads:
            t.join(30)
        answered = {pid: where for d in acked for pid, where in d.items()}
        by_a = [pid for pid, where in answered.items() if where == a.url]
        by_b = [pid for pid, where in answered.items() if where == b.url]
        assert before_kill > 20 and len(by_a) > 10, (before_kill, len(by_a))
        assert len(by_b) > len(by_a)  # b kept answering after a died
        # a comes back on its own home, as an orchestrator would restart it
        restarted = Server(a.home, env={"MLRIG_PREDICTIONS_URL": url})
        restarted.wait_ready()

        store = PredictionStore(url)
        try:
            model = httpx.post(f"{b.url}/predict", json=WINE_ROW).json()["model"]
            deadline = time.monotonic() + 30
            while (missing := store.missing_ids(model, answered)) and time.monotonic() < deadline:
                time.sleep(0.5)  # a spool being replayed
            assert missing == []
            with store.engine.connect() as conn:
                # each request carried one client id: a second request row for an id is a
                # duplicate in the log (the id index itself cannot hold two)
                duplicates = conn.execute(
                    sa.text(
                        "SELECT ids, COUNT(*) FROM prediction_requests WHERE model_name = :m "
                        "AND ids IS NOT NULL GROUP BY ids HAVING COUNT(*) > 1"
                    ),
                    {"m": model},
                ).all()
                logged = conn.execute(
                    sa.text("SELECT COUNT(*) FROM prediction_ids WHERE model_name = :m"),
                    {"m": model},
                ).scalar_one()
            assert duplicates == []
            assert logged >= len(answered)  # unanswered requests may be logged too
        finally:
            store.close()
    finally:
        for server in (a, b, restarted):
            if server is not None:
                server.stop()
