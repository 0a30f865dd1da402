"""Real prediction stores that stall or fail on demand, and a tiny real model, for the
overload and fault tests (unit and integration)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from sklearn.linear_model import LinearRegression

from mlrig.predictions.records import PredictionBatch, generated_ids, new_batch_id
from mlrig.predictions.store import PredictionStore
from mlrig.serving.predictor import Batch, Predictor
from mlrig.tracking.loading import LoadedModel

FEATURES = ("x1", "x2")
CURSED = 666.0  # PickyRegression refuses any row with this x1
SHORT = -1.0  # ... and answers one prediction too few for a batch holding a row with this x1


class ControlledStore(PredictionStore):
    """A real PredictionStore (SQLite or PostgreSQL, real commits) whose ``insert_batches``
    blocks while ``gate`` is cleared, or raises ``fault()`` when one is set: the stalled or
    broken database of the fault tests. Everything else is the real store's."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.gate = threading.Event()
        self.gate.set()
        self.waiting = threading.Event()  # set once an insert is held at the closed gate
        self.fault: Callable[[], BaseException] | None = None
        self.inserts = 0

    def block(self) -> None:
        self.waiting.clear()
        self.gate.clear()

    def release(self) -> None:
        self.gate.set()

    def insert_batches(self, batches: Sequence[PredictionBatch]) -> None:
        self.inserts += 1
        if self.fault is not None:
            raise self.fault()
        if not self.gate.is_set():
            self.waiting.set()
            if not self.gate.wait(120):
                raise TimeoutError("the test never released the store")
        super().insert_batches(batches)


class PickyRegression(LinearRegression):
    """A real fitted regression that raises on rows whose x1 is CURSED, and drops a prediction
    when a row's x1 is SHORT: an estimator that misbehaves on one request's input but not on
    its neighbours'."""

    def predict(self, X: Any) -> np.ndarray:
        if np.any(np.asarray(X, dtype=np.float64)[:, 0] == CURSED):
            raise ValueError(f"x1 = {CURSED:g} is not a value this model can predict")
        y = np.asarray(super().predict(X))
        return y[:-1] if np.any(np.asarray(X, dtype=np.float64)[:, 0] == SHORT) else y


def picky_model() -> LoadedModel:
    """y = 2·x1 + 10·x2, fitted exactly; model "m" version "7"."""
    x = np.array([[0.0, 1.0], [1.0, 0.0], [2.0, 1.0], [3.0, 0.0]])
    return LoadedModel(
        PickyRegression().fit(x, 2 * x[:, 0] + 10 * x[:, 1]), "m", "7", None, FEATURES
    )


def picky_predictor() -> Predictor:
    return Predictor(picky_model(), 1_000)


def rows_batch(x: list[list[float]], ids: list[str] | None = None) -> Batch:
    """A validated batch as the parser would build it."""
    batch_id = new_batch_id()
    return Batch(
        batch_id,
        ids if ids is not None else generated_ids(batch_id, len(x)),
        ids is not None,
        np.asarray(x, dtype=np.float64),
    )
