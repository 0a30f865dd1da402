"""The micro-batcher answers each request for what it did: a cancelled neighbour, a failing
neighbour or a bug in the flush never leaves a request waiting or fails it for another's fault."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from mlrig.predictions.records import PredictionBatch
from mlrig.predictions.writer import GroupCommitWriter, LogUnavailableError
from mlrig.serving.batcher import PredictBatcher
from mlrig.serving.predictor import Batch
from tests.fault_stores import CURSED, SHORT, ControlledStore, picky_predictor, rows_batch


@pytest.fixture
def store(controlled_store: ControlledStore) -> ControlledStore:
    return controlled_store


@pytest.fixture
def writer(store: ControlledStore) -> Iterator[GroupCommitWriter]:
    w = GroupCommitWriter(store, max_queued_rows=4)
    w.start()
    yield w
    store.release()
    w.stop()


async def _one_turn(batcher: PredictBatcher, batches: Sequence[Batch]) -> list[Any]:
    """Start every request in the same loop turn (one micro-batch); their outcomes, committed."""
    predictor = picky_predictor()
    tasks = [asyncio.create_task(batcher.predict(predictor, b, "predict", 0.0)) for b in batches]
    await asyncio.sleep(0)  # each task has joined the pending list; the flush has not run
    return tasks


async def _settled(tasks: list[asyncio.Task[Any]]) -> list[Any]:
    outcomes = await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 30)
    for out in outcomes:
        if isinstance(out, tuple):
            await asyncio.wait_for(out[2], 30)
    return outcomes


def test_a_cancelled_waiter_leaves_the_rest_of_its_micro_batch_answered(
    writer: GroupCommitWriter, store: ControlledStore
) -> None:
    batches = [rows_batch([[1.0, 0.0]], [f"r{i}"]) for i in range(3)]

    async def scenario() -> list[Any]:
        tasks = await _one_turn(PredictBatcher(writer), batches)
        tasks[0].cancel()  # its client went away before the flush
        return await _settled(tasks)

    outcomes = asyncio.run(scenario())
    assert isinstance(outcomes[0], asyncio.CancelledError)
    assert [float(o[0][0]) for o in outcomes[1:]] == pytest.approx([2.0, 2.0])
    assert store.missing_ids("m", ["r0", "r1", "r2"]) == ["r0"]  # the abandoned one is not logged


def test_an_estimator_failure_fails_only_the_request_that_caused_it(
    writer: GroupCommitWriter, store: ControlledStore
) -> None:
    batches = [
        rows_batch([[1.0, 0.0], [2.0, 1.0]], ["a0", "a1"]),
        rows_batch([[CURSED, 0.0]], ["bad"]),
        rows_batch([[3.0, 0.0]], ["c0"]),
    ]

    async def scenario() -> list[Any]:
        return await _settled(await _one_turn(PredictBatcher(writer), batches))

    good_a, bad, good_c = asyncio.run(scenario())
    assert isinstance(bad, ValueError) and "666" in str(bad)
    assert good_a[0].tolist() == pytest.approx([2.0, 14.0])
    assert good_c[0].tolist() == pytest.approx([6.0])
    assert store.missing_ids("m", ["a0", "a1", "bad", "c0"]) == ["bad"] and store.count() == 3


def test_requests_over_the_log_bound_are_refused_before_they_are_predicted(
    writer: GroupCommitWriter, store: ControlledStore
) -> None:
    store.block()
    batcher = PredictBatcher(writer)

    async def scenario() -> None:
        (task,) = await _one_turn(batcher, [rows_batch([[1.0, 0.0]] * 2)])
        first = await asyncio.wait_for(task, 30)  # predicted; its commit waits at the store
        assert await asyncio.to_thread(store.waiting.wait, 30)
        # 2 rows committing; in one turn 1 + 1 fit the bound of 4, the next row does not
        tasks = await _one_turn(batcher, [rows_batch([[1.0, 0.0]]) for _ in range(3)])
        refused = await asyncio.wait_for(asyncio.gather(tasks[2], return_exceptions=True), 30)
        assert isinstance(refused[0], LogUnavailableError) and "full" in str(refused[0])
        assert writer.queued_rows <= 4
        store.release()
        await _settled(tasks[:2])
        await asyncio.wait_for(first[2], 30)

    asyncio.run(scenario())
    assert store.count() == 4 and writer.peak_queued_rows == 4 and writer.refused == 1


def test_a_model_answering_too_few_rows_fails_that_request_not_its_neighbours(
    writer: GroupCommitWriter, store: ControlledStore
) -> None:
    """Without the check, the short answer would shift every later request's predictions."""
    batches = [
        rows_batch([[1.0, 0.0]], ["a"]),
        rows_batch([[2.0, 0.0], [SHORT, 0.0]], ["s0", "s1"]),
        rows_batch([[3.0, 1.0]], ["c"]),
    ]

    async def scenario() -> list[Any]:
        return await _settled(await _one_turn(PredictBatcher(writer), batches))

    a, short, c = asyncio.run(scenario())
    assert isinstance(short, ValueError) and "1 predictions for 2 rows" in str(short)
    assert a[0].tolist() == pytest.approx([2.0]) and c[0].tolist() == pytest.approx([16.0])
    assert store.missing_ids("m", ["a", "s0", "s1", "c"]) == ["s0", "s1"] and store.count() == 2


class _BrokenWriter(GroupCommitWriter):
    """The real writer with a bug in its hand-off (submit raises)."""

    def submit(self, batches: Sequence[PredictionBatch], n_requests: int = 1) -> Any:
        raise RuntimeError("bug in submit")


def test_a_bug_in_the_flush_fails_its_requests_instead_of_leaving_them_waiting(
    store: ControlledStore,
) -> None:
    broken = _BrokenWriter(store)
    broken.start()

    async def scenario() -> list[Any]:
        tasks = await _one_turn(PredictBatcher(broken), [rows_batch([[1.0, 0.0]])] * 2)
        return list(await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 30))

    try:
        outcomes = asyncio.run(scenario())
    finally:
        broken.stop()
    assert all(isinstance(o, RuntimeError) for o in outcomes), outcomes
    assert store.count() == 0
