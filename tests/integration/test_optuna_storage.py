"""Optuna's storage on the team's MariaDB (the French demo's MySQL): two `mlrig tune` workers
share one study there, the URL given through MLRIG_OPTUNA_STORAGE (never on a command line),
and its password appears in no output, also when the login fails."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest
import sqlalchemy as sa

from tests.conftest import run_cli
from tests.services import MariaDb

PASSWORD = "tune-pw-5e1c"
FINISHED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)


@pytest.fixture
def storage(mariadb: MariaDb) -> str:
    """A database on the session MariaDB and a user of its own with a password."""
    root = mariadb.database("optuna_tune")
    engine = sa.create_engine(root)
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP USER IF EXISTS 'tuner'@'127.0.0.1'")
        conn.exec_driver_sql(f"CREATE USER 'tuner'@'127.0.0.1' IDENTIFIED BY '{PASSWORD}'")
        conn.exec_driver_sql("GRANT ALL ON optuna_tune.* TO 'tuner'@'127.0.0.1'")
    engine.dispose()
    return root.replace("root@", f"tuner:{PASSWORD}@")


@pytest.mark.slow
def test_two_workers_share_a_study_in_mariadb_without_showing_its_password(
    home: Path, storage: str
) -> None:
    env = {"MLRIG_OPTUNA_STORAGE": storage}
    args = ("tune", "--home", str(home), "--trials", "4", "--workers", "2", "-m", "ridge")
    done = run_cli(*args, "--study", "shared", "--json", env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert PASSWORD not in done.stdout + done.stderr
    assert json.loads(done.stdout)["params"]["study_trials"] == 4
    rdb = optuna.storages.RDBStorage(storage)
    try:
        study = optuna.load_study(study_name="shared", storage=rdb)
        assert len([t for t in study.trials if t.state in FINISHED]) == 4
    finally:
        rdb.engine.dispose()
    assert not (home / "optuna.db").exists()  # nothing went to the embedded default

    # a wrong password: a clear failure naming the storage, without either password
    wrong = storage.replace(PASSWORD, "wrong-pw-77aa")
    failed = run_cli(*args, "--study", "other", env={"MLRIG_OPTUNA_STORAGE": wrong}, timeout=120)
    shown = failed.stdout + failed.stderr
    assert failed.returncode != 0
    assert PASSWORD not in shown and "wrong-pw-77aa" not in shown
    assert "Traceback" not in shown, shown[-2000:]
