"""StageClock: per-stage nanoseconds and request counts, a shared stage counted per request."""

from __future__ import annotations

from mlrig.predictions.stages import COMMIT, PARSE, STAGES, StageClock


def test_a_shared_stage_counts_once_per_waiting_request() -> None:
    clock = StageClock()
    clock.add(PARSE, 2_000)
    clock.add(PARSE, 4_000)
    clock.add(COMMIT, 500_000, requests=10)  # one commit that 10 requests waited for
    snap = clock.snapshot()
    assert list(snap) == list(STAGES)
    assert snap["parse"] == (2, 6e-6)
    assert snap["commit"] == (10, 5e-3)
    assert snap["turn"] == (0, 0.0)
