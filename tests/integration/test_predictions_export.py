"""`mlrig predictions export` as a subprocess: exit codes instead of tracebacks, and --since
with a UTC offset means that instant on SQLite too."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd

from mlrig.predictions.records import PredictionBatch, new_batch_id
from tests.conftest import free_port, prediction_store, run_cli


def _log_hours(home: Path) -> None:
    """Three one-row predictions of model m at 10:00, 11:00 and 12:00 UTC and one of model n
    at 10:00 with the id m used at 11:00, each with feedback."""
    store = prediction_store(home)
    t0 = dt.datetime(2026, 11, 1, 10, tzinfo=dt.UTC)
    batches = []
    for h in range(3):
        x = np.array([[float(h)]])
        batches.append(
            PredictionBatch(
                new_batch_id(), [f"h{h}"], True, t0 + dt.timedelta(hours=h), "m", "1",
                "predict", ("a",), x, x[:, 0], 1.0,
            )
        )  # fmt: skip
    x = np.array([[7.0]])  # model n chose an id model m also uses
    batches.append(
        PredictionBatch(
            new_batch_id(), ["h1"], True, t0, "n", "3", "predict", ("a",), x, x[:, 0], 1.0
        )
    )
    store.insert_batches(batches)
    store.add_feedback("m", [(f"h{h}", 10.0 + h) for h in range(3)])
    store.add_feedback("n", [("h1", 70.0)])
    store.close()


def test_export_since_an_offset_time_keeps_the_rows_after_that_instant(
    home: Path, tmp_path: Path
) -> None:
    _log_hours(home)
    out = tmp_path / "out.csv"
    # 13:30+02:00 is 11:30 UTC: only the 12:00 UTC prediction is newer
    r = run_cli(
        "predictions", "export", "-o", str(out), "-f", "csv",
        "--since", "2026-11-01T13:30:00+02:00", "--home", str(home),
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    frame = pd.read_csv(out)
    assert frame[["id", "a", "actual"]].values.tolist() == [["h2", 2.0, 12.0]]


def test_an_unreachable_store_exits_5_without_a_traceback(tmp_path: Path) -> None:
    url = f"postgresql+psycopg://postgres:hunter2@127.0.0.1:{free_port()}/x?connect_timeout=2"
    out = tmp_path / "out.parquet"
    r = run_cli("predictions", "export", "-o", str(out), env={"MLRIG_PREDICTIONS_URL": url})
    assert r.returncode == 5, r.stderr
    assert "Traceback" not in r.stderr and "hunter2" not in r.stderr
    assert "prediction store" in r.stderr and not out.exists()


def test_an_unwritable_output_is_a_clear_error_not_a_traceback(home: Path, tmp_path: Path) -> None:
    _log_hours(home)
    out = tmp_path / "no-such-dir" / "out.csv"
    r = run_cli("predictions", "export", "-o", str(out), "-f", "csv", "--home", str(home))
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr and f"--output {out}" in r.stderr


def test_a_store_that_refuses_reads_exits_5_without_a_traceback(
    postgres_url: str, tmp_path: Path
) -> None:
    """A real PostgreSQL store that fails on demand: the schema is there (opening succeeds) but
    the login role may not read it, so the read itself fails (it printed a traceback)."""
    import sqlalchemy as sa

    from mlrig.predictions.migrate import VERSION_TABLE
    from mlrig.predictions.store import PredictionStore
    from tests.services import fresh_database

    store_url = fresh_database(postgres_url, "export_noread")
    admin = PredictionStore(store_url)
    admin.create_schema()
    with admin.engine.begin() as conn:
        conn.exec_driver_sql(
            "DO $$ BEGIN CREATE ROLE mlrig_noread LOGIN; "
            "EXCEPTION WHEN duplicate_object THEN NULL; END $$"
        )
        conn.exec_driver_sql("REVOKE ALL ON ALL TABLES IN SCHEMA public FROM mlrig_noread")
        # opening reads the schema's revision; the read of the log itself is what fails
        conn.exec_driver_sql(f"GRANT SELECT ON {VERSION_TABLE} TO mlrig_noread")
    admin.close()
    url = sa.engine.make_url(store_url).set(username="mlrig_noread")
    env = {"MLRIG_PREDICTIONS_URL": url.render_as_string(hide_password=False)}
    out = tmp_path / "out.parquet"
    r = run_cli("predictions", "export", "-o", str(out), env=env)
    assert r.returncode == 5, r.stderr
    assert "Traceback" not in r.stderr and not out.exists()
    assert "cannot read the prediction log (InsufficientPrivilege" in r.stderr


def test_export_of_one_model_joins_its_own_feedback(home: Path, tmp_path: Path) -> None:
    _log_hours(home)
    out = tmp_path / "n.csv"
    r = run_cli(
        "predictions", "export", "-o", str(out), "-f", "csv", "-m", "n", "--home", str(home)
    )
    assert r.returncode == 0, r.stderr
    frame = pd.read_csv(out)
    assert frame[["model_name", "id", "a", "actual"]].values.tolist() == [["n", "h1", 7.0, 70.0]]
    every = tmp_path / "all.csv"
    assert (
        run_cli(
            "predictions", "export", "-o", str(every), "-f", "csv", "--home", str(home)
        ).returncode
        == 0
    )
    both = pd.read_csv(every).set_index(["model_name", "id"])["actual"]
    assert both[("m", "h1")] == 11.0 and both[("n", "h1")] == 70.0 and len(both) == 4
