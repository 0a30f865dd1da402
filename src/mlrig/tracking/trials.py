"""Log tuning trials as nested MLflow runs, off the optimisation thread.

A nested run per trial costs several store transactions (31–55 ms on SQLite, FACTS.md), more
than an ElasticNet fit. Trials are queued and a background thread writes them in groups while
the next trials train: each still becomes its own child run with params and score, and no
model is ever logged per trial.
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlflow import MlflowClient

PARENT_TAG = "mlflow.parentRunId"


@dataclass(frozen=True)
class TrialRecord:
    number: int
    state: str  # COMPLETE | PRUNED | FAIL
    params: dict[str, Any]
    metrics: dict[str, float]
    start_ms: int
    end_ms: int


class TrialLogger:
    """Queue trials with ``submit``; ``close`` waits until every queued trial is written."""

    def __init__(self, client: MlflowClient, experiment_id: str, parent_run_id: str) -> None:
        self._client = client
        self._experiment_id = experiment_id
        self._parent = parent_run_id
        self._queue: queue.SimpleQueue[TrialRecord | None] = queue.SimpleQueue()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="mlrig-trial-logger", daemon=True)
        self._thread.start()

    def submit(self, record: TrialRecord) -> None:
        self._queue.put(record)

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join()
        if self._error is not None:
            raise self._error

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            if self._error is None:
                try:
                    self._write(item)
                except BaseException as exc:  # surfaced by close(); later trials are skipped
                    self._error = exc

    def _write(self, t: TrialRecord) -> None:
        from mlflow.entities import Metric, Param, RunTag

        run = self._client.create_run(
            self._experiment_id,
            start_time=t.start_ms,
            run_name=f"trial-{t.number}",
            tags={PARENT_TAG: self._parent, "mlrig.trial": str(t.number), "mlrig.state": t.state},
        )
        run_id = run.info.run_id
        now = int(time.time() * 1000)
        self._client.log_batch(
            run_id,
            metrics=[Metric(k, v, now, 0) for k, v in t.metrics.items()],
            params=[Param(k, str(v)) for k, v in t.params.items()],
            tags=[RunTag("mlflow.runName", f"trial-{t.number}")],
            synchronous=True,
        )
        status = {"COMPLETE": "FINISHED", "PRUNED": "KILLED"}.get(t.state, "FAILED")
        self._client.set_terminated(run_id, status, end_time=t.end_ms)
