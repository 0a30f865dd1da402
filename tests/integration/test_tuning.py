"""`mlrig tune`: nested trial runs, shared studies across processes, resume after a kill."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import optuna
import pytest

from tests.conftest import MLRIG, run_cli

FINISHED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)


def _study(home: Path, name: str = "wine-quality") -> optuna.Study:
    return optuna.load_study(study_name=name, storage=f"sqlite:///{home / 'optuna.db'}")


def _tune(home: Path, *args: str, timeout: float = 300) -> dict:  # type: ignore[type-arg]
    done = run_cli("tune", "--home", str(home), "--json", *args, timeout=timeout)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _children(client, parent: str) -> list:  # type: ignore[no-untyped-def,type-arg]
    return client.search_runs(
        [client.get_run(parent).info.experiment_id],
        f"tags.mlflow.parentRunId = '{parent}'",
        max_results=1000,
    )


def test_tune_logs_each_trial_as_a_nested_run_and_gates_the_refitted_best(
    home: Path, mlflow_client
) -> None:  # type: ignore[no-untyped-def]
    first = _run_plain(home)
    result = _tune(home, "--trials", "12", "-m", "elasticnet", "-m", "hist_gradient_boosting")
    parent = mlflow_client.get_run(result["run_id"])
    assert parent.info.status == "FINISHED"
    assert parent.data.params["study"] == "wine-quality"
    assert parent.data.params["searched"] == "elasticnet,hist_gradient_boosting"
    assert "best_validation_rmse" in parent.data.metrics and "rmse" in parent.data.metrics
    assert "plots" in {a.path for a in mlflow_client.list_artifacts(result["run_id"])}
    version = mlflow_client.get_model_version("wine-quality", result["version"])
    assert version.run_id == result["run_id"]  # the refitted best model, logged in the parent

    children = _children(mlflow_client, result["run_id"])
    study = _study(home)
    trials = [t for t in study.trials if t.state in FINISHED]
    assert len(children) == len(study.trials) and len(trials) == 12
    by_number = {int(c.data.tags["mlrig.trial"]): c for c in children}
    assert sorted(by_number) == [t.number for t in study.trials]
    for t in study.trials:
        child = by_number[t.number]
        assert child.data.params["model"] in ("elasticnet", "hist_gradient_boosting")
        assert not mlflow_client.list_artifacts(child.info.run_id)  # no model per trial
        if t.state == optuna.trial.TrialState.COMPLETE:
            assert child.data.metrics["validation_rmse"] == pytest.approx(t.value)
            assert child.info.status == "FINISHED"
    best = by_number[study.best_trial.number]
    assert result["params"]["model"] == best.data.params["model"]
    assert result["params"]["best_trial"] == study.best_trial.number
    # the gate compared on the same frozen evaluation set as the plain run
    assert result["decision"]["champion"] == pytest.approx(first["metrics"]["rmse"])
    assert result["promoted"] is (result["metrics"]["rmse"] < first["metrics"]["rmse"])


def _run_plain(home: Path) -> dict:  # type: ignore[type-arg]
    done = run_cli("run", "--home", str(home), "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_two_workers_share_one_study_without_losing_or_duplicating_trials(
    home: Path, mlflow_client
) -> None:  # type: ignore[no-untyped-def]
    result = _tune(home, "--trials", "16", "--workers", "2", "-m", "elasticnet", "-m", "ridge")
    study = _study(home)
    numbers = [t.number for t in study.trials]
    assert len(numbers) == len(set(numbers))
    assert len([t for t in study.trials if t.state in FINISHED]) == 16
    children = _children(mlflow_client, result["run_id"])
    assert sorted(int(c.data.tags["mlrig.trial"]) for c in children) == sorted(numbers)
    params = {tuple(sorted(t.params.items())) for t in study.trials}
    assert len(params) == len(study.trials)  # the workers did not sample the same points
    # resuming with a higher target runs only the difference
    more = _tune(home, "--trials", "20", "-m", "elasticnet", "-m", "ridge")
    assert more["params"]["trials_this_run"] == 4 and more["params"]["study_trials"] == 20


@pytest.mark.slow
def test_interrupted_study_resumes_to_its_target(home: Path, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLRIG_")}
    log = (tmp_path / "tune.log").open("w")
    proc = subprocess.Popen(
        [MLRIG, "tune", "--home", str(home), "--trials", "60", "-m", "random_forest", "--quiet"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + 120
    done = 0
    try:
        while time.monotonic() < deadline and proc.poll() is None and done < 4:
            time.sleep(0.5)
            done = _finished_raw(home / "optuna.db")
        assert proc.poll() is None and done >= 4, (tmp_path / "tune.log").read_text()
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        log.close()
    before = _study(home)
    finished_before = len([t for t in before.trials if t.state in FINISHED])
    assert finished_before < 60

    result = _tune(home, "--trials", "60", "-m", "random_forest", timeout=600)
    study = _study(home)
    finished = [t for t in study.trials if t.state in FINISHED]
    assert len(finished) == 60
    assert result["params"]["trials_this_run"] == 60 - finished_before
    assert not [t for t in study.trials if t.state == optuna.trial.TrialState.RUNNING]
    numbers = [t.number for t in study.trials]
    assert len(numbers) == len(set(numbers))


def _finished_raw(db: Path) -> int:
    """Finished trials, read with plain sqlite3: loading a study while another process is
    still creating Optuna's tables races on its schema-version row."""
    import sqlite3

    if not db.exists():
        return 0
    try:
        with sqlite3.connect(db, timeout=5) as conn:
            row = conn.execute(
                "SELECT count(*) FROM trials WHERE state IN ('COMPLETE', 'PRUNED')"
            ).fetchone()
    except sqlite3.OperationalError:  # tables not created yet
        return 0
    return int(row[0])


def test_tune_refuses_a_family_that_cannot_do_the_task(home: Path) -> None:
    done = run_cli("tune", "--home", str(home), "--trials", "3", "-m", "logistic")
    assert done.returncode == 2
    assert "tune.models = 'logistic' cannot do regression" in done.stderr
    assert not (home / "optuna.db").exists() or not optuna.get_all_study_summaries(
        f"sqlite:///{home / 'optuna.db'}"
    )


def test_workers_share_a_study_in_postgresql(home: Path, postgres_url: str) -> None:
    """Team mode: the study lives in PostgreSQL, as when several machines work on it."""
    import sqlalchemy as sa

    engine = sa.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sa.text("DROP DATABASE IF EXISTS optuna_tune"))
        conn.execute(sa.text("CREATE DATABASE optuna_tune"))
    engine.dispose()
    storage = postgres_url.rsplit("/", 1)[0] + "/optuna_tune"
    result = _tune(
        home, "--trials", "8", "--workers", "2", "-m", "ridge", "--storage", storage,
        "--study", "shared",
    )  # fmt: skip
    rdb = optuna.storages.RDBStorage(storage)
    try:
        study = optuna.load_study(study_name="shared", storage=rdb)
        assert len([t for t in study.trials if t.state in FINISHED]) == 8
    finally:
        rdb.engine.dispose()  # an undisposed pool is garbage-collected later, in another test
    assert result["params"]["study"] == "shared" and result["params"]["study_trials"] == 8
    assert not (home / "optuna.db").exists()  # nothing went to the embedded default
