"""The prediction store on every backend: SQLite in tmp_path, real PostgreSQL and MariaDB servers."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from mlrig.errors import StoreUnavailableError
from mlrig.predictions.records import PredictionBatch, generated_ids, new_batch_id
from mlrig.predictions.store import PredictionStore
from mlrig.predictions.writer import GroupCommitWriter
from tests.conftest import WINE_ROW, Server


@pytest.fixture
def store(store_url: str) -> Iterator[PredictionStore]:
    s = PredictionStore(store_url)
    s.create_schema()
    yield s
    s.close()


def _batch(
    n: int = 1, ids: list[str] | None = None, when: dt.datetime | None = None
) -> PredictionBatch:
    batch_id = new_batch_id()
    x = np.arange(n * 2, dtype=np.float64).reshape(n, 2)
    return PredictionBatch(
        batch_id,
        ids or generated_ids(batch_id, n),
        ids is not None,
        when or dt.datetime.now(dt.UTC),
        "m",
        "1",
        "predict",
        ("a", "b"),
        x,
        x[:, 0] * 10,
        1.0,
    )


def _ids(store: PredictionStore) -> set[str]:
    frame = store.read_frame()
    return set(frame["id"]) if len(frame) else set()


def test_group_commit_shares_transactions_and_loses_nothing(store: PredictionStore) -> None:
    writer = GroupCommitWriter(store)
    writer.start()
    batches = [_batch(1 + i % 3) for i in range(300)]

    async def many() -> None:
        await asyncio.gather(*(writer.write([b]) for b in batches))

    asyncio.run(many())
    writer.stop()
    expected = {pid for b in batches for pid in b.ids}
    assert _ids(store) == expected
    assert store.count() == writer.rows_written == len(expected)
    assert writer.commits < 300  # concurrent requests shared commits


def test_rows_come_back_one_per_prediction_with_features(store: PredictionStore) -> None:
    b = _batch(3)
    store.insert_batches([b])
    frame = store.read_frame().set_index("id")
    assert list(frame.index) == b.ids
    assert frame.loc[b.ids[2], "a"] == 4.0 and frame.loc[b.ids[2], "b"] == 5.0
    assert frame.loc[b.ids[2], "prediction"] == 40.0
    assert frame.loc[b.ids[2], "model_version"] == "1"


def test_retried_client_id_keeps_its_first_prediction(store: PredictionStore) -> None:
    store.insert_batches([_batch(1, ["ride-1"])])
    store.insert_batches([_batch(2, ["ride-1", "ride-2"])])
    assert store.missing_ids("m", ["ride-1", "ride-2", "ride-3"]) == ["ride-3"]
    store.add_feedback("m", [("ride-1", 7.0)])
    assert store.read_frame().set_index("id").loc["ride-2", "prediction"] == 20.0


def test_generated_ids_resolve_without_an_index_row(store: PredictionStore) -> None:
    b = _batch(2)
    store.insert_batches([b])
    unknown_row = f"{b.batch_id}-2"
    unknown_batch = f"{new_batch_id()}-0"
    assert store.missing_ids("m", [*b.ids, unknown_row, unknown_batch]) == [
        unknown_row,
        unknown_batch,
    ]


def test_feedback_export_and_since(store: PredictionStore) -> None:
    old = _batch(1, when=dt.datetime(2020, 1, 1, tzinfo=dt.UTC))
    new = _batch(2)
    store.insert_batches([old, new])
    store.add_feedback("m", [(new.ids[0], 5.0)])
    store.add_feedback("m", [(new.ids[0], 6.0)])  # corrected ground truth replaces the old one
    frame = store.read_frame(since=dt.datetime(2021, 1, 1, tzinfo=dt.UTC)).set_index("id")
    assert sorted(frame.index) == sorted(new.ids)
    assert frame.loc[new.ids[0], "actual"] == 6.0
    assert np.isnan(frame.loc[new.ids[1], "actual"])


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
        asyncio.run(writer.write([_batch()]))
    writer.stop()


@pytest.mark.slow
def test_server_logs_to_postgresql_when_configured(trained_home: Path, postgres_url: str) -> None:
    from tests.services import fresh_database

    postgres_url = fresh_database(postgres_url, "serve_logs")
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
    store = PredictionStore(postgres_url)
    row = store.read_frame().set_index("id").loc["pg-1"]
    store.close()
    assert row["model_version"] == "1" and row["actual"] == 6.0 and row["alcohol"] == 9.4
    local = trained_home / "predictions.db"  # training's lease may have created it: no rows
    if local.exists():
        embedded = PredictionStore(f"sqlite:///{local}")
        assert embedded.count() == 0
        embedded.close()


def test_since_with_a_non_utc_offset_means_the_same_instant_everywhere(
    store: PredictionStore,
) -> None:
    """SQLite keeps naive UTC text: an aware bound used to be compared by its wall clock."""
    from mlrig.predictions.labelled import read_labelled
    from mlrig.predictions.window import read_window

    t0 = dt.datetime(2026, 11, 1, 10, tzinfo=dt.UTC)
    batches = [_batch(1, [f"h{h}"], t0 + dt.timedelta(hours=h)) for h in range(3)]  # 10,11,12Z
    store.insert_batches(batches)
    store.add_feedback("m", [(f"h{h}", float(h)) for h in range(3)])
    plus_two = dt.timezone(dt.timedelta(hours=2))
    since = dt.datetime(2026, 11, 1, 13, 30, tzinfo=plus_two)  # 11:30Z
    minus_five = dt.timezone(dt.timedelta(hours=-5))
    assert since == dt.datetime(2026, 11, 1, 6, 30, tzinfo=minus_five)
    for bound in (since, since.astimezone(minus_five), since.astimezone(dt.UTC)):
        assert store.read_frame(since=bound)["id"].tolist() == ["h2"]
        assert read_labelled(store, "m", since=bound)["id"].tolist() == ["h2"]
        assert read_window(store, "m", since=bound).n_rows == 1


def test_concurrent_corrections_of_the_same_ids_never_fail(store: PredictionStore) -> None:
    """Feedback used to be delete-then-insert: two requests correcting one id at once could
    both insert it and one failed on the primary key (503 on PostgreSQL). Now an upsert."""
    import threading

    store.insert_batches([_batch(2, ["a", "b"])])
    errors: list[BaseException] = []
    start = threading.Barrier(6)

    def correct(worker: int) -> None:
        start.wait()
        for k in range(15):
            try:
                store.add_feedback("m", [("a", worker * 100.0 + k), ("b", -1.0)])
            except BaseException as exc:  # collected: the assertion below shows them
                errors.append(exc)

    threads = [threading.Thread(target=correct, args=(w,)) for w in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == []
    assert store.feedback_count("m") == 2
    actual = store.read_frame().set_index("id").loc["a", "actual"]
    assert actual in {w * 100.0 + 14 for w in range(6)}  # some worker's last correction


def test_every_operation_on_an_unreachable_store_is_a_store_error() -> None:
    """No raw SQLAlchemy exception (which the app turned into a 503 for bugs too, and the CLI
    into a traceback); the message names the operation, never the password or the ids."""
    from tests.conftest import free_port

    url = f"postgresql+psycopg://postgres:hunter2@127.0.0.1:{free_port()}/x?connect_timeout=2"
    store = PredictionStore(url)
    calls = {
        "look up prediction ids": lambda: store.missing_ids("m", ["ride-secret"]),
        "store feedback": lambda: store.add_feedback("m", [("ride-secret", 1.0)]),
        "read the prediction log": lambda: store.read_frame(),
        "count predictions": store.count,
        "count feedback": store.feedback_count,
        "open": store.create_schema,
    }
    for what, call in calls.items():
        with pytest.raises(StoreUnavailableError, match=f"cannot {what}") as err:
            call()
        assert "hunter2" not in str(err.value) and "ride-secret" not in str(err.value)
    store.close()


def test_a_failed_group_commit_is_logged_without_ids_or_features(
    store: PredictionStore, caplog: pytest.LogCaptureFixture
) -> None:
    """A real failing commit: on PostgreSQL an id with a NUL byte (what used to fail whole
    group commits when it slipped past the edge), on SQLite and MySQL (which store NUL) a
    trigger refusing the id row. The writer's log line named the driver error with every bound
    id and feature blob."""
    import logging

    secret = "ride-secret-\x00-42"
    trigger = {
        "sqlite": "BEGIN SELECT RAISE(ABORT, 'refused'); END",
        "mysql": "FOR EACH ROW SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'refused'",
    }.get(store.engine.dialect.name)
    if trigger is not None:
        with store.engine.begin() as conn:
            conn.exec_driver_sql(f"CREATE TRIGGER refuse BEFORE INSERT ON prediction_ids {trigger}")
    batch = _batch(2, [secret, "ride-other-7"])
    writer = GroupCommitWriter(store)
    writer.start()
    with caplog.at_level(logging.DEBUG), pytest.raises(StoreUnavailableError):
        asyncio.run(writer.write([batch]))
    writer.stop()
    assert store.count() == 0  # nothing of the failed commit was kept
    lines = [rec.getMessage() for rec in caplog.records]
    assert any("cannot write predictions" in line for line in lines), lines
    for line in lines:
        assert "ride-secret" not in line and "ride-other-7" not in line
        assert "INSERT" not in line and "parameters" not in line


def test_looking_up_more_ids_than_one_statement_may_bind(store: PredictionStore) -> None:
    """PostgreSQL binds at most 65,535 parameters per statement (SQLite's limit depends on its
    build): a feedback body of 70,000 ids (under the 8 MB body limit) failed the lookup on
    PostgreSQL ("number of parameters must be between 0 and 65535") and answered 503."""
    known = _batch(3, ["k0", "k1", "k2"])
    generated = _batch(2)
    store.insert_batches([known, generated])
    unknown = [f"u{i}" for i in range(70_000)]
    asked = ["k1", *unknown[:35_000], *generated.ids, "k0", *unknown[35_000:], "k2"]
    assert store.missing_ids("m", asked) == unknown


def test_large_requests_and_reports_round_trip_and_microseconds_order_the_window(
    store: PredictionStore,
) -> None:
    """What MySQL's default column types would lose: a request bigger than 64 KB (BLOB), an HTML
    report bigger than 64 KB (TEXT), and the order of requests logged within one second
    (DATETIME without fractions). The window's ``last`` cut falls inside a request, and its
    feedback still joins the right rows."""
    from mlrig.predictions.window import read_window

    t0 = dt.datetime(2026, 11, 1, 10, 0, 0, 100, tzinfo=dt.UTC)
    big = _batch(5000, [f"b{i}" for i in range(5000)], t0)  # 80 KB of features
    small = [_batch(2, [f"s{k}-0", f"s{k}-1"], t0 + dt.timedelta(microseconds=k)) for k in (1, 2)]
    store.insert_batches([big, *small])
    store.add_feedback("m", [("b4999", 1.5), ("s1-1", 2.5), ("s2-0", 3.5)])
    frame = store.read_frame()
    assert len(frame) == 5004 and frame["a"].tolist()[:3] == [0.0, 2.0, 4.0]
    assert frame["id"].tolist()[-4:] == ["s1-0", "s1-1", "s2-0", "s2-1"]  # by microsecond
    window = read_window(store, "m", last=5)  # the newest 5 rows: b4999 and both small ones
    (part,) = window.parts
    assert part.n_rows == 5
    # the window keeps no row order (drift needs none): compare (feature, actual) pairs
    rows = sorted(
        zip(part.x[:, 0].tolist(), np.nan_to_num(part.actual, nan=-1).tolist(), strict=True)
    )
    assert rows == [(0.0, -1.0), (0.0, 3.5), (2.0, -1.0), (2.0, 2.5), (9998.0, 1.5)]
    assert window.last_at == t0 + dt.timedelta(microseconds=2)  # not rounded to the second
    report = "<p>" + "x" * 100_000 + "</p>"
    result_id = store.save_monitoring("m", "drift", "{}", report)
    assert store.monitoring_report(result_id) == report
