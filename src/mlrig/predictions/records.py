"""What the prediction log holds: one record per answered request, with every row in it.

One record per request (not per prediction) keeps durable logging cheap for 1,000-row
batches: the features go in as one matrix, the predictions as one array. Every prediction
still has its own id: the client's, or ``<batch_id>-<row>`` generated here, which the store
can resolve without an index row per prediction.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from dataclasses import dataclass

import numpy as np

_GENERATED = re.compile(r"^([0-9a-f]{32})-(\d+)$")


@dataclass(frozen=True)
class PredictionBatch:
    """The rows of one answered request: ``x`` is (n, len(feature_names)), ``predictions`` (n,);
    a classifier also logs ``probabilities`` (n, len(classes)), one column per class."""

    batch_id: str
    ids: list[str]
    client_ids: bool  # True when some ids came from the client (they need an index row)
    created_at: dt.datetime
    model_name: str
    model_version: str
    endpoint: str
    feature_names: tuple[str, ...]
    x: np.ndarray
    predictions: np.ndarray
    latency_ms: float
    probabilities: np.ndarray | None = None
    classes: tuple[str, ...] | None = None

    @property
    def n_rows(self) -> int:
        return len(self.ids)


def new_batch_id() -> str:
    return uuid.uuid4().hex


def generated_id(batch_id: str, row: int) -> str:
    return f"{batch_id}-{row}"


# "-0", "-1", …, grown by replacement (never in place: threads may read it): formatting 1,000
# row numbers per batch cost 2.4× the concatenation.
_SUFFIXES: tuple[str, ...] = ()


def generated_ids(batch_id: str, n: int) -> list[str]:
    global _SUFFIXES
    suffixes = _SUFFIXES
    if len(suffixes) < n:
        suffixes = tuple(f"-{i}" for i in range(max(n, 1024)))
        _SUFFIXES = suffixes
    return [batch_id + s for s in suffixes[:n]]


def parse_generated_id(prediction_id: str) -> tuple[str, int] | None:
    """(batch_id, row) for an id of the generated form, else None."""
    match = _GENERATED.match(prediction_id)
    return (match.group(1), int(match.group(2))) if match else None
