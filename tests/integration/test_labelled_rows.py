"""The retrain's data join on a real SQLite prediction store: logged features joined with their
feedback by id (client ids and generated ids), duplicates and unlabelled rows left out."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pytest

from mlrig.predictions.labelled import read_labelled
from mlrig.predictions.records import PredictionBatch, generated_ids, new_batch_id
from mlrig.predictions.store import PredictionStore

pytestmark = pytest.mark.integration
NAMES = ("a", "b")
T0 = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)


def _batch(
    x: list[list[float]], ids: list[str] | None = None, model: str = "m", minutes: int = 0
) -> PredictionBatch:
    batch_id = new_batch_id()
    return PredictionBatch(
        batch_id,
        ids or generated_ids(batch_id, len(x)),
        ids is not None,
        T0 + dt.timedelta(minutes=minutes),
        model,
        "1",
        "predict",
        NAMES,
        np.array(x, dtype=float),
        np.zeros(len(x)),
        1.0,
    )


@pytest.fixture()
def store(tmp_path: Path) -> PredictionStore:
    s = PredictionStore(f"sqlite:///{tmp_path / 'p.db'}")
    s.create_schema()
    return s


def test_joins_feedback_by_client_and_generated_ids(store: PredictionStore) -> None:
    first = _batch([[1, 10], [2, 20]], ["c1", "c2"], minutes=1)
    second = _batch([[3, 30], [4, 40], [5, 50]], minutes=2)
    other_model = _batch([[9, 90]], ["o1"], model="other", minutes=3)
    store.insert_batches([first, second, other_model])
    store.add_feedback("m", [("c2", 2.5), (second.ids[0], 3.5), (second.ids[2], 5.5)])
    store.add_feedback("other", [("o1", 9.5)])

    frame = read_labelled(store, "m")
    # unlabelled rows (c1, second row of the second request) and the other model are left out
    assert frame["id"].tolist() == ["c2", second.ids[0], second.ids[2]]
    assert frame[["a", "b"]].to_numpy().tolist() == [[2, 20], [3, 30], [5, 50]]
    assert frame["actual"].tolist() == [2.5, 3.5, 5.5]
    assert frame["logged_at"].is_monotonic_increasing


def test_a_retried_client_id_counts_once_and_latest_feedback_wins(store: PredictionStore) -> None:
    store.insert_batches([_batch([[1, 1]], ["dup"], minutes=1)])
    store.insert_batches([_batch([[7, 7]], ["dup"], minutes=2)])  # a retry logged again
    store.add_feedback("m", [("dup", 1.0)])
    store.add_feedback("m", [("dup", 2.0)])

    frame = read_labelled(store, "m")
    assert frame["id"].tolist() == ["dup"]
    assert frame[["a", "b"]].to_numpy().tolist() == [[1, 1]]  # the first logged prediction
    assert frame["actual"].tolist() == [2.0]


def test_since_keeps_only_newer_requests_and_no_feedback_means_empty(
    store: PredictionStore,
) -> None:
    old, new = _batch([[1, 1]], ["old"], minutes=1), _batch([[2, 2]], ["new"], minutes=30)
    store.insert_batches([old, new])
    assert read_labelled(store, "m").empty
    store.add_feedback("m", [("old", 1.0), ("new", 2.0)])
    frame = read_labelled(store, "m", since=T0 + dt.timedelta(minutes=10))
    assert frame["id"].tolist() == ["new"]
