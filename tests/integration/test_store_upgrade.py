"""The store's schema is versioned by Alembic revisions (predictions/migrate.py). A store the
previous mlrig created (no version table, ids keyed by id alone, one namespace for every model)
is recognised, stamped and upgraded in place when the new code opens it: every prediction id and
every feedback row is still found, now under the model that answered it. SQLite, the session
PostgreSQL and the session MariaDB."""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path

import numpy as np
import orjson
import pytest
import sqlalchemy as sa

from mlrig.predictions import migrate
from mlrig.predictions.labelled import read_labelled
from mlrig.predictions.records import PredictionBatch, generated_ids, new_batch_id
from mlrig.predictions.store import PredictionStore, metadata, requests
from tests.conftest import run_cli

T0 = dt.datetime(2026, 11, 1, 12, tzinfo=dt.UTC)

# The schema of the two re-keyed tables as the previous mlrig created them.
OLD = sa.MetaData()
requests.to_metadata(OLD)  # unchanged
sa.Table(
    "prediction_ids",
    OLD,
    sa.Column("id", sa.String(128), primary_key=True),
    sa.Column("batch_id", sa.String(64), nullable=False),
    sa.Column("row", sa.Integer, nullable=False),
)
sa.Table(
    "feedback",
    OLD,
    sa.Column("id", sa.String(128), primary_key=True),
    sa.Column("actual", sa.Float, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)


@pytest.fixture
def url(store_url: str) -> str:
    return store_url


def _request_row(model: str, batch_id: str, x: list[float], minutes: int) -> dict[str, object]:
    values = np.array(x, dtype="<f8")
    return {
        "batch_id": batch_id,
        "created_at": T0 + dt.timedelta(minutes=minutes),
        "model_name": model,
        "model_version": "1",
        "endpoint": "predict",
        "n_rows": len(x),
        "feature_names": orjson.dumps(["a"]).decode(),
        "features": values.tobytes(),
        "predictions": (values * 10).tobytes(),
        "ids": None,
        "latency_ms": 1.0,
    }


def _old_store(url: str) -> dict[str, str]:
    """An old-schema store: model m (client ids r1, r2; a generated-id request), model n
    (client id r3), feedback for r1, the second generated id and r3, plus one feedback row
    whose request is gone. Returns the batch ids by name."""
    b = {"A": new_batch_id(), "B": new_batch_id(), "C": new_batch_id()}
    engine = sa.create_engine(url)
    OLD.create_all(engine)
    rows = [
        _request_row("m", b["A"], [1.0, 2.0], 1),
        _request_row("m", b["B"], [3.0, 4.0], 2),
        _request_row("n", b["C"], [5.0], 3),
    ]
    rows[0]["ids"], rows[2]["ids"] = '["r1", "r2"]', '["r3"]'
    with engine.begin() as conn:
        conn.execute(OLD.tables["prediction_requests"].insert(), rows)
        conn.execute(
            OLD.tables["prediction_ids"].insert(),
            [
                {"id": "r1", "batch_id": b["A"], "row": 0},
                {"id": "r2", "batch_id": b["A"], "row": 1},
                {"id": "r3", "batch_id": b["C"], "row": 0},
            ],
        )
        at = T0 + dt.timedelta(hours=1)
        conn.execute(
            OLD.tables["feedback"].insert(),
            [
                {"id": "r1", "actual": 10.5, "created_at": at},
                {"id": f"{b['B']}-1", "actual": 40.5, "created_at": at},
                {"id": "r3", "actual": 50.5, "created_at": at},
                {"id": "ghost", "actual": 99.0, "created_at": at},
            ],
        )
    engine.dispose()
    return b


def test_an_old_store_is_upgraded_in_place_and_keeps_every_row(url: str) -> None:
    b = _old_store(url)
    store = PredictionStore(url)
    assert store.revision() is None  # created before versioning
    assert store.upgrade() == ("0001", migrate.head())  # recognised, stamped, upgraded
    try:
        assert store.revision() == migrate.head()
        gen = generated_ids(b["B"], 2)
        assert store.missing_ids("m", ["r1", "r2", *gen, "r3"]) == ["r3"]
        assert store.missing_ids("n", ["r3", "r1"]) == ["r1"]
        assert store.count() == 5
        assert store.feedback_count() == 4  # the orphan too (under model '')
        m = read_labelled(store, "m")
        assert m[["id", "a", "actual"]].values.tolist() == [["r1", 1.0, 10.5], [gen[1], 4.0, 40.5]]
        n = read_labelled(store, "n")
        assert n[["id", "a", "actual"]].values.tolist() == [["r3", 5.0, 50.5]]
        frame = store.read_frame()
        assert len(frame) == 5 and frame["actual"].notna().sum() == 3
        # the new namespace works on the upgraded tables: n may now use m's id r1
        x = np.array([[7.0]])
        batch_id = new_batch_id()
        store.insert_batches(
            [
                PredictionBatch(
                    batch_id, ["r1"], True, T0, "n", "1", "predict", ("a",), x, x[:, 0], 1.0
                )
            ]
        )
        store.add_feedback("n", [("r1", 70.5)])
        n = read_labelled(store, "n")  # oldest request first: the new r1 is logged at T0
        assert n[["id", "a", "actual"]].values.tolist() == [["r1", 7.0, 70.5], ["r3", 5.0, 50.5]]
        assert read_labelled(store, "m")["actual"].tolist() == [10.5, 40.5]
        # a second open finds nothing to do
        assert store.upgrade() == ("0003", "0003")
        assert store.feedback_count() == 5
        names = set(sa.inspect(store.engine).get_table_names())
        assert not any(n.startswith("_mlrig_v1_") for n in names)  # the copies are gone
    finally:
        store.close()


@pytest.mark.parametrize("initial", ["old", "empty"])
def test_servers_opening_a_store_at_once_migrate_it_once(url: str, initial: str) -> None:
    """Several workers start together on the old store (or an empty database): one migrates,
    the others wait for it and find it done; every row is there once."""
    if initial == "old":
        _old_store(url)
    stores = [PredictionStore(url) for _ in range(4)]
    errors: list[BaseException] = []
    start = threading.Barrier(len(stores))

    def open_it(store: PredictionStore) -> None:
        start.wait()
        try:
            store.create_schema()
        except BaseException as exc:  # reported below, with the others
            errors.append(exc)

    threads = [threading.Thread(target=open_it, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    try:
        assert errors == []
        assert stores[0].revision() == migrate.head()
        assert stores[0].feedback_count() == (4 if initial == "old" else 0)
        assert stores[0].missing_ids("m", ["r1", "r2"]) == (
            [] if initial == "old" else ["r1", "r2"]
        )
    finally:
        for s in stores:
            s.close()


def test_an_unversioned_store_missing_later_nullable_columns_gets_them_and_keeps_its_rows(
    url: str,
) -> None:
    store = PredictionStore(url)
    store.create_schema()
    x = np.array([[1.0], [2.0]])
    batch = PredictionBatch(
        new_batch_id(), ["p", "q"], True, T0, "m", "1", "predict", ("a",), x, x[:, 0], 1.0
    )
    store.insert_batches([batch])
    with store.engine.begin() as conn:  # as a version before classifiers and versioning left it
        conn.exec_driver_sql("ALTER TABLE prediction_requests DROP COLUMN classes")
        conn.exec_driver_sql("ALTER TABLE prediction_requests DROP COLUMN probabilities")
        conn.exec_driver_sql(f"DROP TABLE {migrate.VERSION_TABLE}")
    assert store.upgrade() == ("0002", "0003")
    try:
        columns = {c["name"] for c in sa.inspect(store.engine).get_columns("prediction_requests")}
        assert {"classes", "probabilities"} <= columns
        assert store.read_frame()["id"].tolist() == ["p", "q"]
        assert store.missing_ids("m", ["p", "q"]) == []
    finally:
        store.close()


def test_the_migrated_schema_is_the_one_the_code_declares(url: str) -> None:
    """Running every revision on an empty database gives exactly store.py's tables, columns,
    types and indexes: a change to the schema without a revision fails here."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    store = PredictionStore(url)
    try:
        assert store.upgrade() == (None, migrate.head())
        with store.engine.connect() as conn:
            context = MigrationContext.configure(
                conn, opts={"compare_type": True, "include_name": _ours}
            )
            assert compare_metadata(context, metadata) == []
    finally:
        store.close()


def _ours(name: str | None, kind: str, _parent: object) -> bool:
    return kind != "table" or name != migrate.VERSION_TABLE


def test_the_version_table_is_mlrigs_own_beside_mlflow_and_optuna(url: str) -> None:
    """MLflow and Optuna keep their revision in ``alembic_version``; the store, sharing their
    database, neither reads nor moves it."""
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)")
        conn.exec_driver_sql("INSERT INTO alembic_version VALUES ('1b5f0d9ad7c1')")
    store = PredictionStore(url)
    try:
        assert store.upgrade() == (None, migrate.head())
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT version_num FROM alembic_version").all() == [
                ("1b5f0d9ad7c1",)
            ]
            stamped = conn.exec_driver_sql(f"SELECT version_num FROM {migrate.VERSION_TABLE}")
            assert stamped.all() == [(migrate.head(),)]
    finally:
        store.close()
        engine.dispose()


def test_a_re_key_interrupted_after_its_copies_resumes_and_keeps_every_row(url: str) -> None:
    """MySQL commits each DDL statement, so a crash can stop revision 0002 after it copied the
    old rows aside and dropped the originals; the next open finishes it from the copies."""
    _old_store(url)
    engine = sa.create_engine(url)
    quote = engine.dialect.identifier_preparer.quote
    with engine.begin() as conn:
        for name in ("prediction_ids", "feedback"):
            conn.exec_driver_sql(
                f"CREATE TABLE {quote('_mlrig_v1_' + name)} AS SELECT * FROM {name}"
            )
            conn.exec_driver_sql(f"DROP TABLE {name}")
    engine.dispose()
    store = PredictionStore(url)
    try:
        assert store.upgrade() == ("0001", migrate.head())
        assert store.missing_ids("m", ["r1", "r2"]) == []
        assert store.missing_ids("n", ["r3"]) == []
        assert store.feedback_count() == 4
    finally:
        store.close()


def test_the_upgrade_command_migrates_an_old_store_once_and_check_says_so(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    _old_store(url)
    env = {"MLRIG_PREDICTIONS_URL": url}
    behind = run_cli("predictions", "upgrade", "--check", env=env)
    assert behind.returncode == 1 and "revision none, head 0003" in behind.stdout
    done = run_cli("predictions", "upgrade", env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("0001 → revision 0003")
    again = run_cli("predictions", "upgrade", "--check", env=env)
    assert again.returncode == 0 and "revision 0003, head 0003" in again.stdout
    store = PredictionStore(url)
    try:
        assert store.feedback_count() == 4
    finally:
        store.close()
