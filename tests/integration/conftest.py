from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def mlflow_client(home: Path):  # type: ignore[no-untyped-def]
    """A client on the embedded store that `mlrig run --home HOME` writes."""
    from mlflow import MlflowClient

    uri = f"sqlite:///{home.resolve() / 'mlflow.db'}"
    return MlflowClient(uri, uri)


@pytest.fixture(params=["sqlite", "postgresql", "mysql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database for a prediction store on each backend: a file in tmp_path, a fresh
    database on the session PostgreSQL, a fresh one on the session MariaDB (MySQL)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'p.db'}"
    if request.param == "mysql":
        return request.getfixturevalue("mariadb").database("mlrig_store")  # type: ignore[no-any-return]
    from tests.services import fresh_database

    return fresh_database(request.getfixturevalue("postgres_url"), "mlrig_store")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "/integration/" in str(item.fspath):
            item.add_marker(pytest.mark.integration)
