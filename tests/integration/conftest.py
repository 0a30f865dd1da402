from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture
def mlflow_client(home: Path):  # type: ignore[no-untyped-def]
    """A client on the embedded store that `mlrig run --home HOME` writes."""
    from mlflow import MlflowClient

    uri = f"sqlite:///{home.resolve() / 'mlflow.db'}"
    return MlflowClient(uri, uri)


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty prediction store on each backend (the session PostgreSQL with mlrig's tables
    dropped)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'p.db'}"
        return
    import sqlalchemy as sa

    from mlrig.predictions.store import metadata

    pg: str = request.getfixturevalue("postgres_url")
    engine = sa.create_engine(pg)
    metadata.drop_all(engine)
    engine.dispose()
    yield pg


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "/integration/" in str(item.fspath):
            item.add_marker(pytest.mark.integration)
