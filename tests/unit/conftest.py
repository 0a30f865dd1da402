from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fault_stores import ControlledStore


@pytest.fixture
def controlled_store(tmp_path: Path) -> Iterator[ControlledStore]:
    """An empty SQLite ControlledStore, released (nothing left blocked) and closed after."""
    s = ControlledStore(f"sqlite:///{tmp_path / 'predictions.db'}")
    s.create_schema()
    yield s
    s.release()
    s.close()
