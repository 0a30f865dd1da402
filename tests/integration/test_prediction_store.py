"""The prediction store on both backends: SQLite in tmp_path and a real PostgreSQL cluster."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from mlrig.errors import StoreUnavailableError
from mlrig.predictions.store import PredictionRow, PredictionStore, metadata
from mlrig.predictions.writer import GroupCommitWriter
from tests.conftest import WINE_ROW, Server


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[PredictionStore]:
    url = (
        f"sqlite:///{tmp_path / 'p.db'}"
        if request.param == "sqlite"
        else request.getfixturevalue("postgres_url")
    )
    s = PredictionStore(url)
    metadata.drop_all(s.engine)
    s.create_schema()
    yield s
    s.close()


def _row(i: int, when: dt.datetime | None = None) -> PredictionRow:
    return PredictionRow(
        f"id-{i}",
        when or dt.datetime.now(dt.UTC),
        "m",
        "1",
        "predict",
        f'{{"a": {i}, "b": 0.5}}',
        float(i),
        1.0,
    )


def test_group_commit_shares_transactions_and_loses_nothing(store: PredictionStore) -> None:
    writer = GroupCommitWriter(store)
    writer.start()

    async def many() -> None:
        await asyncio.gather(*(writer.write([_row(i)]) for i in range(300)))

    asyncio.run(many())
    writer.stop()
    assert store.ids() == {f"id-{i}" for i in range(300)}
    assert writer.rows_written == 300
    assert writer.commits < 300  # concurrent requests shared commits


def test_retried_id_keeps_its_first_prediction_without_failing_the_batch(
    store: PredictionStore,
) -> None:
    store.insert_predictions([_row(1)])
    store.insert_predictions([_row(1), _row(2)])
    assert store.count() == 2
    frame = store.read_frame()
    assert frame.set_index("id").loc["id-1", "prediction"] == 1.0


def test_feedback_export_and_since(store: PredictionStore) -> None:
    old = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
    store.insert_predictions([_row(1, old), _row(2), _row(3)])
    assert store.missing_ids(["id-1", "nope"]) == ["nope"]
    store.add_feedback([("id-2", 5.0)])
    store.add_feedback([("id-2", 6.0)])  # corrected ground truth replaces the old one
    frame = store.read_frame(since=dt.datetime(2021, 1, 1, tzinfo=dt.UTC)).set_index("id")
    assert sorted(frame.index) == ["id-2", "id-3"]
    assert frame.loc["id-2", "actual"] == 6.0
    assert frame.loc["id-3", "a"] == 3


def test_unreachable_database_fails_the_write_not_silently(tmp_path: Path) -> None:
    from tests.conftest import free_port

    store = PredictionStore(
        f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/x?connect_timeout=2"
    )
    with pytest.raises(StoreUnavailableError, match="prediction store"):
        store.create_schema()
    writer = GroupCommitWriter(store)
    writer.start()
    with pytest.raises(StoreUnavailableError, match="write failed"):
        asyncio.run(writer.write([_row(1)]))
    writer.stop()


@pytest.mark.slow
def test_server_logs_to_postgresql_when_configured(trained_home: Path, postgres_url: str) -> None:
    engine = sa.create_engine(postgres_url)
    metadata.drop_all(engine)
    srv = Server(trained_home, env={"MLRIG_PREDICTIONS_URL": postgres_url})
    try:
        srv.wait_ready()
        import httpx

        r = httpx.post(f"{srv.url}/predict", json={**WINE_ROW, "id": "pg-1"})
        assert r.status_code == 200
        assert (
            httpx.post(f"{srv.url}/feedback", json={"id": "pg-1", "actual": 6}).status_code == 200
        )
    finally:
        srv.stop()
    with engine.connect() as conn:
        assert (
            conn.execute(sa.text("select model_version from predictions where id='pg-1'")).scalar()
            == "1"
        )
        assert conn.execute(sa.text("select actual from feedback where id='pg-1'")).scalar() == 6.0
    assert not (trained_home / "predictions.db").exists()
    engine.dispose()
