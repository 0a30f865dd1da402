"""The local spool of the prediction log: order kept, replay idempotent, a damaged or torn
record never replayed, a spool that cannot be written refused with its path and reason."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa

from mlrig.errors import StoreUnavailableError
from mlrig.predictions.records import PredictionBatch, new_batch_id
from mlrig.predictions.spool import Spool, SpoolError, spool_file
from mlrig.predictions.store import PredictionStore
from mlrig.predictions.writer import GroupCommitWriter, LogUnavailableError
from tests.fault_stores import FEATURES, ControlledStore

MB = 1024 * 1024


class _OrderedStore(ControlledStore):
    """Records the batch ids of every committed insert, in commit order."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.committed: list[str] = []

    def insert_batches(self, batches: Sequence[PredictionBatch]) -> None:
        super().insert_batches(batches)
        self.committed.extend(b.batch_id for b in batches)


@pytest.fixture
def store(tmp_path: Path) -> _OrderedStore:
    s = _OrderedStore(f"sqlite:///{tmp_path / 'predictions.db'}")
    s.create_schema()
    yield s
    s.release()
    s.close()


def _down() -> BaseException:
    return StoreUnavailableError("prediction store: cannot write predictions (connection refused)")


def _batch(i: int, n: int = 2, classifier: bool = False, mixed: bool = False) -> PredictionBatch:
    x = np.arange(n * 2, dtype=np.float64).reshape(n, 2) + i
    if mixed:
        x = np.array([[float(i), f"red-{r}"] for r in range(n)], dtype=object)
    return PredictionBatch(
        new_batch_id(), [f"c{i}-{r}" for r in range(n)], True,
        dt.datetime(2026, 11, 24, 12, 0, i % 60, tzinfo=dt.UTC), "m", "7", "predict", FEATURES,
        x, np.full(n, i + 0.5), 1.25,
        np.full((n, 2), 0.5) if classifier else None, ("a", "b") if classifier else None,
    )  # fmt: skip


def _eventually(check: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.02)


def _writer(store: PredictionStore, spool: Spool, **kw: float) -> GroupCommitWriter:
    w = GroupCommitWriter(
        store,
        spool=spool,
        replay_interval_s=0.05,
        replay_max_backoff_s=0.5,
        **kw,  # type: ignore[arg-type]
    )
    w.start()
    return w


def _write_all(writer: GroupCommitWriter, batches: list[PredictionBatch]) -> None:
    async def go() -> None:
        for b in batches:  # one at a time: each is its own group, the order is known
            await asyncio.wait_for(writer.write([b]), 30)

    asyncio.run(go())


def _stored_rows(store: PredictionStore) -> tuple[int, int]:
    with store.engine.connect() as conn:
        requests = conn.exec_driver_sql("SELECT count(*) FROM prediction_requests").scalar_one()
        ids = conn.exec_driver_sql("SELECT count(*) FROM prediction_ids").scalar_one()
    return int(requests), int(ids)


def test_a_batch_comes_back_from_the_spool_as_it_went_in_in_order(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.db", 64 * MB)
    batches = [_batch(0), _batch(1, classifier=True), _batch(2, mixed=True), _batch(3, n=1)]
    spool.append(batches[:2])
    spool.append(batches[2:])
    assert (spool.stats.batches, spool.stats.rows) == (4, 7)
    group = spool.oldest(max_rows=1_000)
    assert group is not None and group.rejected == 0
    assert [b.batch_id for b in group.batches] == [b.batch_id for b in batches]
    for back, sent in zip(group.batches, batches, strict=True):
        assert back.ids == sent.ids and back.created_at == sent.created_at
        assert back.feature_names == sent.feature_names and back.classes == sent.classes
        assert np.array_equal(back.x, sent.x) and back.x.dtype == sent.x.dtype
        assert np.array_equal(back.predictions, sent.predictions)
        if sent.probabilities is not None:
            assert np.array_equal(back.probabilities, sent.probabilities)  # type: ignore[arg-type]
    first = spool.oldest(max_rows=5)
    assert first is not None and len(first.batches) == 2  # a third batch would pass 5 rows
    spool.delete_through(first.last_seq)
    rest = spool.oldest(max_rows=1_000)
    assert rest is not None and [b.batch_id for b in rest.batches] == [
        b.batch_id for b in batches[2:]
    ]


def test_a_store_outage_is_spooled_then_replayed_in_order_exactly_once(
    tmp_path: Path, store: _OrderedStore
) -> None:
    spool = Spool(tmp_path / "spool" / "s.db", 64 * MB)
    writer = _writer(store, spool)
    try:
        before = [_batch(i) for i in range(3)]
        _write_all(writer, before)
        store.fault = _down
        during = [_batch(i) for i in range(3, 23)]
        _write_all(writer, during)  # every one acknowledged: spooled, not refused
        health = writer.health()
        assert health.problem() is None
        assert health.spool is not None and health.spool.batches == 20
        check = health.spool.as_check()
        assert check["ok"] and "database unreachable since" in check["state"], check
        assert "20 batches / 40 rows" in check["state"]
        store.fault = None
        after = [_batch(i) for i in range(23, 26)]
        _write_all(writer, after)  # queued behind the spool, not ahead of it
        _eventually(lambda: spool.stats.batches == 0 and not writer.health().spool.spooling)  # type: ignore[union-attr]
        assert store.committed == [b.batch_id for b in before + during + after]
        assert _stored_rows(store) == (26, 52)
        assert writer.health().spool.replayed_batches == 23  # type: ignore[union-attr]
    finally:
        writer.stop()


def test_replaying_a_batch_the_store_already_has_is_a_no_op(
    tmp_path: Path, store: _OrderedStore
) -> None:
    """A crash between "stored" and "deleted from the spool" replays the group again."""
    spool = Spool(tmp_path / "s.db", 64 * MB)
    batches = [_batch(i) for i in range(5)]
    spool.append(batches)
    group = spool.oldest(1_000)
    assert group is not None
    store.insert_batches(group.batches)  # ... and the process dies before delete_through
    writer = _writer(store, Spool(tmp_path / "s.db", 64 * MB))  # the next start replays
    try:
        _eventually(lambda: writer.health().spool.batches == 0)  # type: ignore[union-attr]
    finally:
        writer.stop()
    assert _stored_rows(store) == (5, 10)
    assert store.missing_ids("m", [i for b in batches for i in b.ids]) == []


def test_a_damaged_record_is_quarantined_never_replayed(
    tmp_path: Path, store: _OrderedStore
) -> None:
    path = tmp_path / "s.db"
    spool = Spool(path, 64 * MB)
    good, bad = _batch(1), _batch(2)
    spool.append([good, bad, _batch(3)])
    spool.close()
    with sqlite3.connect(path) as raw:  # one flipped byte in the second record's features
        x = raw.execute("SELECT x FROM batches WHERE batch_id = ?", (bad.batch_id,)).fetchone()[0]
        flipped = bytes([x[0] ^ 0xFF]) + x[1:]
        raw.execute("UPDATE batches SET x = ? WHERE batch_id = ?", (flipped, bad.batch_id))
    writer = _writer(store, Spool(path, 64 * MB))
    try:
        _eventually(lambda: writer.health().spool.batches == 0)  # type: ignore[union-attr]
        assert writer.health().spool.quarantined == 1  # type: ignore[union-attr]
    finally:
        writer.stop()
    assert store.missing_ids("m", bad.ids) == bad.ids
    assert store.missing_ids("m", good.ids) == []
    assert _stored_rows(store) == (2, 4)


_APPEND_FOREVER = """
import datetime as dt, sys
from pathlib import Path
import numpy as np
from mlrig.predictions.records import PredictionBatch, new_batch_id
from mlrig.predictions.spool import Spool
spool = Spool(Path(sys.argv[1]), 1 << 30)
now = dt.datetime.now(dt.UTC)
x, y = np.ones((200, 2)), np.zeros(200)
print("ready", flush=True)
while True:
    spool.append([
        PredictionBatch(new_batch_id(), [str(i) for i in range(200)], True, now, "m", "7",
                        "predict", ("x1", "x2"), x, y, 1.0)
        for _ in range(20)
    ])
"""


def test_a_writer_killed_mid_append_leaves_only_whole_records(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    root = Path(__file__).resolve().parents[3]
    env = {**os.environ, "PYTHONPATH": str(root / "src")}
    child = subprocess.Popen(
        [sys.executable, "-c", _APPEND_FOREVER, str(path)],
        stdout=subprocess.PIPE,
        env=env,
        start_new_session=True,
    )
    try:
        assert child.stdout is not None and child.stdout.readline() == b"ready\n"
        time.sleep(1.0)
    finally:
        os.killpg(child.pid, signal.SIGKILL)  # mid-transaction, most likely
        child.wait(30)
        child.stdout.close()  # type: ignore[union-attr]
    spool = Spool(path, 1 << 30)
    group = spool.oldest(10**9)
    assert group is not None and group.rejected == 0
    assert len(group.batches) % 20 == 0 and len(group.batches) >= 20  # whole groups only
    assert all(b.n_rows == 200 and b.x.shape == (200, 2) for b in group.batches)


def test_an_unwritable_spool_refuses_with_its_path_and_nothing_is_logged(
    tmp_path: Path, store: _OrderedStore
) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the spool directory should be")
    spool = Spool(blocker / "spool" / "s.db", 64 * MB)
    with pytest.raises(SpoolError) as err:
        spool.append([_batch(0)])
    assert str(blocker / "spool" / "s.db") in str(err.value) and "Not a directory" in str(err.value)

    writer = _writer(store, spool, retry_after_s=4)
    try:
        store.fault = _down
        lost = _batch(1)
        with pytest.raises(LogUnavailableError) as refused:
            _write_all(writer, [lost])
        message = str(refused.value)
        assert refused.value.retry_after_s == 4
        assert "unreachable" in message and str(spool.path) in message, message
        assert "Not a directory" in message and "nothing of this request was logged" in message
        assert writer.health().problem() is not None  # /ready 503 while nothing can log
        store.fault = None
        real, gone = store.engine, sa.create_engine(f"sqlite:///{tmp_path / 'no' / 'such.db'}")
        store.engine = gone  # the database itself does not answer: the probe fails too
        time.sleep(1.0)
        assert writer.health().problem() is not None
        gone.dispose()
        store.engine = real  # back: /ready recovers with no traffic to prove it
        _eventually(lambda: writer.health().problem() is None)
        ok = _batch(2)
        _write_all(writer, [ok])  # logged directly again
    finally:
        writer.stop()
    assert store.missing_ids("m", lost.ids) == lost.ids
    assert store.missing_ids("m", ok.ids) == []


def test_a_full_spool_refuses_and_names_the_limit(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s.db", 1 * MB)
    with pytest.raises(SpoolError) as err:
        for i in range(100):
            spool.append([_batch(i, n=1000)])  # ≈ 24 kB of floats each
    assert "full" in str(err.value) and "spool_max_bytes" in str(err.value)
    assert 10 < spool.stats.batches < 100


def test_a_full_spool_yields_to_the_store_once_it_answers_even_before_the_replay(
    tmp_path: Path, store: _OrderedStore
) -> None:
    path = tmp_path / "s.db"
    writer = _writer(store, Spool(path, 1 * MB))
    try:
        with Spool(path, MB).replay_lease() as held:  # another replica holds the lease: no replay
            assert held
            store.fault = _down
            spooled: list[PredictionBatch] = []
            with pytest.raises(LogUnavailableError, match="full"):
                while len(spooled) < 100:
                    b = _batch(len(spooled), n=1000)
                    _write_all(writer, [b])
                    spooled.append(b)
            store.fault = None
            late = _batch(999, n=1000)  # would not fit either
            _write_all(writer, [late])  # the spool is still full and still not replayed
            assert store.committed == [late.batch_id]
            assert writer.health().problem() is None  # logging works: ready again
        _eventually(lambda: not writer.health().spool.spooling)  # type: ignore[union-attr]
    finally:
        writer.stop()
    assert sorted(store.committed) == sorted(b.batch_id for b in [*spooled, late])


def test_only_one_replica_at_a_time_holds_the_replay_lease(tmp_path: Path) -> None:
    first, second = Spool(tmp_path / "s.db", MB), Spool(tmp_path / "s.db", MB)
    with first.replay_lease() as mine:
        assert mine
        with second.replay_lease() as theirs:
            assert not theirs
    with second.replay_lease() as theirs:
        assert theirs


def test_two_replicas_sharing_a_spool_replay_each_batch_once(
    tmp_path: Path, store: _OrderedStore
) -> None:
    path = tmp_path / "s.db"
    store.fault = _down
    writers = [_writer(store, Spool(path, 64 * MB)) for _ in range(2)]
    try:
        batches = [_batch(i) for i in range(30)]
        _write_all(writers[0], batches[::2])
        _write_all(writers[1], batches[1::2])
        store.fault = None
        _eventually(lambda: all(not w.health().spool.spooling for w in writers))  # type: ignore[union-attr]
    finally:
        for w in writers:
            w.stop()
    assert sorted(store.committed) == sorted(b.batch_id for b in batches)  # each once
    assert _stored_rows(store) == (30, 60)


def test_the_spool_file_is_per_store_and_hides_the_password(tmp_path: Path) -> None:
    a = spool_file(tmp_path, "postgresql+psycopg://u:secret@db:5432/p")
    b = spool_file(tmp_path, "postgresql+psycopg://u:other@db:5432/p")
    c = spool_file(tmp_path, "postgresql+psycopg://u:secret@db:5432/q")
    assert a == b != c and "secret" not in str(a)
