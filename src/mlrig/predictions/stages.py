"""Where a prediction request's time goes, stage by stage, cheap enough to stay on.

Each stage keeps two integers: nanoseconds summed over requests and requests counted. A stage
shared by a group of requests (one estimator call, one commit) adds its duration once per
request that waited for it, so ``sum / count`` is the mean time a request spent there and the
stages of one request add up to (about) its latency. Each stage is written by one thread only
(the writer thread owns HANDOFF and COMMIT, the event loop the rest), so no lock is needed;
a scrape reads the integers as they are.

Lives in ``predictions`` (below ``serving``) because the group-commit writer records two of the
stages.
"""

from __future__ import annotations

from time import perf_counter_ns

__all__ = [
    "ANSWER",
    "COMMIT",
    "HANDOFF",
    "PARSE",
    "PREDICT",
    "STAGES",
    "TURN",
    "WAKE",
    "StageClock",
    "perf_counter_ns",
]

# In the order a request meets them.
PARSE = 0  # body -> validated float64 matrix (predictor.parse_*)
TURN = 1  # waiting for the micro-batch's loop turn
PREDICT = 2  # the shared estimator call
HANDOFF = 3  # queued for the writer thread until it picks the group up
COMMIT = 4  # insert + commit (fsync) in the writer thread
WAKE = 5  # commit done -> the request runs again on the event loop
ANSWER = 6  # building the JSON answer
STAGES = ("parse", "turn", "predict", "handoff", "commit", "wake", "answer")


class StageClock:
    """Summed nanoseconds and request counts per stage of the prediction hot path."""

    __slots__ = ("counts", "sums")

    def __init__(self) -> None:
        self.sums = [0] * len(STAGES)
        self.counts = [0] * len(STAGES)

    def add(self, stage: int, ns: int, requests: int = 1) -> None:
        """``requests`` requests each spent ``ns`` nanoseconds in ``stage``."""
        self.sums[stage] += ns * requests
        self.counts[stage] += requests

    def snapshot(self) -> dict[str, tuple[int, float]]:
        """{stage: (requests, seconds summed)}."""
        return {name: (self.counts[i], self.sums[i] / 1e9) for i, name in enumerate(STAGES)}
