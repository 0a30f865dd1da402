"""The SQLite insert path (a DB-API connection each writing thread keeps): rows from several
threads land, a fault is StoreUnavailableError without the data, and the next write after the
fault opens a fresh connection and succeeds."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from mlrig.errors import StoreUnavailableError
from mlrig.predictions.store import PredictionStore
from tests.integration.test_prediction_store import _batch, _ids


def test_threads_write_on_their_own_connections_and_a_fault_is_recovered(
    tmp_path: Path,
) -> None:
    path = tmp_path / "predictions.db"
    store = PredictionStore(f"sqlite:///{path}")
    store.create_schema()
    try:
        batches = [_batch(2, [f"t{t}-{i}", f"t{t}-{i}b"]) for t in range(3) for i in range(20)]

        def write(part: int) -> None:
            for b in batches[part * 20 : (part + 1) * 20]:
                store.insert_batches([b])

        threads = [threading.Thread(target=write, args=(t,)) for t in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert _ids(store) == {pid for b in batches for pid in b.ids}

        other = sqlite3.connect(path)  # the table goes away under the held connection
        other.execute("ALTER TABLE prediction_requests RENAME TO moved_away")
        other.commit()
        secret = _batch(1, ["secret-client-id"])
        with pytest.raises(StoreUnavailableError) as err:
            store.insert_batches([secret])
        assert "secret-client-id" not in str(err.value)
        other.execute("ALTER TABLE moved_away RENAME TO prediction_requests")
        other.commit()
        other.close()
        store.insert_batches([secret])  # the table back: the next write lands
        assert "secret-client-id" in _ids(store)
    finally:
        store.close()
