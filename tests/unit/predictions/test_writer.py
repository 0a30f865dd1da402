"""The group-commit writer under faults: a stalled store, a failing store, a dead thread, a
closed event loop — every waiter is answered, the queue stays bounded."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Callable

import numpy as np
import pytest

from mlrig.errors import StoreUnavailableError
from mlrig.predictions.records import PredictionBatch
from mlrig.predictions.writer import GroupCommitWriter, LogUnavailableError, WriterHealth
from tests.fault_stores import FEATURES, ControlledStore, rows_batch


@pytest.fixture
def store(controlled_store: ControlledStore) -> ControlledStore:
    return controlled_store


class _Crash(BaseException):
    """Not an Exception: escapes the writer's per-commit handler like a bug would."""


def _record(n: int = 1, ids: list[str] | None = None) -> PredictionBatch:
    b = rows_batch([[1.0, 2.0]] * n, ids)
    return PredictionBatch(
        b.batch_id, b.ids, b.client_ids, dt.datetime.now(dt.UTC), "m", "7", "predict",
        FEATURES, b.x, np.zeros(n), 1.0,
    )  # fmt: skip


def _eventually(check: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def _writer(store: ControlledStore, **kw: float) -> GroupCommitWriter:
    w = GroupCommitWriter(store, **kw)  # type: ignore[arg-type]
    w.start()
    return w


def test_a_commit_past_its_deadline_is_refused_and_logged_once_the_store_recovers(
    store: ControlledStore,
) -> None:
    writer = _writer(store, commit_timeout_ms=200, retry_after_s=3)
    store.block()

    async def scenario() -> None:
        with pytest.raises(LogUnavailableError) as err:
            await asyncio.wait_for(writer.write([_record(ids=["late"])]), 30)
        assert err.value.retry_after_s == 3 and "not committed within 200 ms" in str(err.value)

    asyncio.run(scenario())
    assert writer.timed_out == 1 and writer.queued_rows == 1  # still held: at-least-once
    assert _eventually(lambda: "stalled" in (writer.health().problem() or ""))
    store.release()
    writer.stop()
    assert store.missing_ids("m", ["late"]) == [] and store.count() == 1 and writer.queued_rows == 0


def test_a_failing_store_fails_the_waiters_with_a_reason_that_carries_no_values(
    store: ControlledStore,
) -> None:
    writer = _writer(store)
    with store.engine.begin() as conn:  # a real fault: the table is gone
        conn.exec_driver_sql("DROP TABLE prediction_ids")
    secret_id = "customer-4711-secret"

    async def scenario() -> None:
        with pytest.raises(StoreUnavailableError, match="write failed"):
            await asyncio.wait_for(writer.write([_record(ids=[secret_id])]), 30)

    asyncio.run(scenario())
    health = writer.health()
    assert health.alive and health.commit_failures == 1 and health.queued_rows == 0
    assert health.last_error is not None and "OperationalError" in health.last_error
    assert secret_id not in health.last_error and "INSERT" not in health.last_error
    assert health.problem() is None  # alive and empty: it can take traffic when the DB is back
    writer.stop()


def test_a_dead_writer_thread_fails_its_waiters_at_once_and_refuses_later_rows(
    store: ControlledStore,
) -> None:
    writer = _writer(store, commit_timeout_ms=600_000)  # a hang would outlast the test
    store.fault = lambda: _Crash("escaped")

    async def scenario() -> None:
        with pytest.raises(LogUnavailableError, match="not running"):
            await asyncio.wait_for(writer.write([_record()]), 30)
        with pytest.raises(LogUnavailableError, match="writer thread died: _Crash"):
            writer.admit(1)
        with pytest.raises(LogUnavailableError, match="not running"):
            await asyncio.wait_for(writer.write([_record()]), 30)

    asyncio.run(scenario())
    health = writer.health()
    assert not health.alive and "died" in (health.problem() or "") and writer.refused == 1
    assert writer.crashed == "writer thread died: _Crash"


def test_a_stopped_writer_refuses_instead_of_hanging(store: ControlledStore) -> None:
    writer = _writer(store, commit_timeout_ms=600_000)
    writer.stop()

    async def scenario() -> None:
        with pytest.raises(LogUnavailableError, match="stopped"):
            await asyncio.wait_for(writer.write([_record()]), 30)

    asyncio.run(scenario())
    assert writer.crashed is None and not writer.health().alive  # stopped is not crashed


def test_admission_keeps_rows_queued_and_reserved_within_the_bound(
    store: ControlledStore,
) -> None:
    writer = _writer(store, max_queued_rows=5)
    store.block()
    writer.admit(50)  # nothing waits: one batch over the bound is still taken

    async def scenario() -> None:
        committed = writer.submit([_record(3)])
        writer.admit(2)  # 3 + 2 = 5: fits
        with pytest.raises(LogUnavailableError, match="full: 4 rows waiting"):
            writer.admit(2, reserved=1)  # 3 + 1 reserved + 2 > 5
        assert writer.refused == 1 and writer.health().problem() is None
        writer.submit([_record(2)])
        assert writer.queued_rows == 5 and "full" in (writer.health().problem() or "")
        store.release()
        await asyncio.wait_for(committed, 30)

    asyncio.run(scenario())
    writer.stop()
    assert store.count() == 5 and writer.queued_rows == 0 and writer.peak_queued_rows == 5


def test_a_closed_event_loop_does_not_kill_the_writer(store: ControlledStore) -> None:
    """The waiter's loop closes before its commit ends: the wake-up has nowhere to go."""
    writer = _writer(store)
    store.block()

    async def leave() -> None:
        writer.submit([_record()])

    asyncio.run(leave())
    assert store.waiting.wait(30)
    store.release()

    async def again() -> None:
        await asyncio.wait_for(writer.write([_record()]), 30)

    asyncio.run(again())
    assert writer.health().alive and store.count() == 2
    writer.stop()


def test_health_names_the_first_problem() -> None:
    def h(**kw: object) -> WriterHealth:
        base: dict[str, object] = dict(
            alive=True, queued_rows=0, max_queued_rows=10, commit_running_s=None,
            last_commit_age_s=None, commits=0, commit_failures=0, last_error=None, refused=0,
            timed_out=0, deadline_s=1.0,
        )  # fmt: skip
        return WriterHealth(**{**base, **kw})  # type: ignore[arg-type]

    assert h().problem() is None and h().as_check()["ok"] is True
    assert h(commit_running_s=0.5).problem() is None
    assert "stalled" in (h(commit_running_s=1.5).problem() or "")
    assert "10 of 10" in (h(queued_rows=10).problem() or "")
    dead = h(alive=False, last_error="writer thread died: KeyError", queued_rows=10)
    assert "died: KeyError" in (dead.problem() or "")
    assert dead.as_check()["ok"] is False and dead.as_check()["alive"] is False
