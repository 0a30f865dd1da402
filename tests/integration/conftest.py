from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def mlflow_client(home: Path):  # type: ignore[no-untyped-def]
    """A client on the embedded store that `mlrig run --home HOME` writes."""
    from mlflow import MlflowClient

    uri = f"sqlite:///{home.resolve() / 'mlflow.db'}"
    return MlflowClient(uri, uri)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "/integration/" in str(item.fspath):
            item.add_marker(pytest.mark.integration)
