"""Store leases across real processes: one holder, released at once when the holder is killed,
an expired lease of another machine taken over. SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

from mlrig.predictions.locks import Lease, LockInfo, acquire, holder
from mlrig.predictions.store import PredictionStore, locks

HOLD = """
import sys
from mlrig.predictions.locks import acquire
from mlrig.predictions.store import PredictionStore
store = PredictionStore(sys.argv[1])
lease = acquire(store, "train:wine-quality", "test holder", ttl=60)
print("held" if not hasattr(lease, "describe") else "busy", flush=True)
sys.stdin.read()  # until the test closes our stdin
lease.release()
print("released", flush=True)
"""


@pytest.fixture
def store(store_url: str) -> Iterator[PredictionStore]:
    s = PredictionStore(store_url)
    s.create_schema()
    yield s
    s.close()


def _holder_process(store: PredictionStore) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(store.engine.url)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def test_one_holder_across_processes_until_it_releases(store: PredictionStore) -> None:
    proc = _holder_process(store)
    try:
        busy = acquire(store, "train:wine-quality", "second")
        assert isinstance(busy, LockInfo)
        assert busy.pid == proc.pid and f"pid {proc.pid}" in busy.describe()
        assert holder(store, "train:wine-quality") == busy
        other = acquire(store, "train:other-model", "another name")
        assert isinstance(other, Lease)
        other.release()
    finally:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.close()
        assert proc.stdout.readline().strip() == "released"
        proc.stdout.close()
        proc.wait(timeout=10)
    mine = acquire(store, "train:wine-quality", "second")
    assert isinstance(mine, Lease)
    with mine:
        assert holder(store, "train:wine-quality") is not None
    assert holder(store, "train:wine-quality") is None


def test_a_killed_holder_releases_at_once_on_this_host(store: PredictionStore) -> None:
    proc = _holder_process(store)
    proc.kill()
    os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)  # dead, not reaped: a zombie
    lease = acquire(store, "train:wine-quality", "after the crash", ttl=60)
    assert isinstance(lease, Lease)
    lease.release()
    proc.communicate(timeout=10)


def test_an_expired_lease_of_another_host_is_taken_over(store: PredictionStore) -> None:
    now = dt.datetime.now(dt.UTC)
    row = {
        "holder": "elsewhere",
        "host": "another-machine",
        "pid": 1,
        "purpose": "a retrain",
        "acquired_at": now - dt.timedelta(minutes=5),
    }
    with store.engine.begin() as conn:
        conn.execute(
            locks.insert().values(name="train:a", expires_at=now + dt.timedelta(minutes=1), **row)
        )
        conn.execute(
            locks.insert().values(name="train:b", expires_at=now - dt.timedelta(seconds=1), **row)
        )
    live = acquire(store, "train:a", "mine")
    assert (
        isinstance(live, LockInfo) and live.host == "another-machine"
    )  # its pid is not ours to check
    taken = acquire(store, "train:b", "mine")
    assert isinstance(taken, Lease)
    assert (
        holder(store, "train:b") is not None and holder(store, "train:b").host != "another-machine"
    )  # type: ignore[union-attr]
    taken.release()
