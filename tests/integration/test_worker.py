"""A schedule on the team's Prefect server, run by a real `prefect worker` process: `mlrig
schedule --pool` registers it (creating the process pool), the worker picks the scheduled run,
the flow ends COMPLETED and the model version is registered in the home's MLflow store."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import run_cli
from tests.services import PrefectWorker as Worker

POOL = "mlrig-workers"
NAME = "worker-train"


def _ended_runs(api: str, deployment_id: str) -> list[dict[str, Any]]:
    # The scheduler creates up to 100 future runs: ask for the ended ones only.
    ended = {"any_": ["COMPLETED", "FAILED", "CRASHED"]}
    body = {
        "flow_runs": {"deployment_id": {"any_": [deployment_id]}, "state": {"type": ended}},
        "limit": 50,
    }
    found: list[dict[str, Any]] = httpx.post(
        f"{api}/flow_runs/filter", json=body, timeout=10
    ).json()
    return found


@pytest.mark.slow
def test_process_worker_runs_the_schedule_and_registers_a_model(
    prefect_api: str, tmp_path: Path, wine_csv: Path
) -> None:
    # A project folder whose config names its data relative to the folder.
    (tmp_path / "mlrig.toml").write_text(f'[data]\nsource = "{wine_csv.name}"\n')
    home = tmp_path / "h"
    env = {"PREFECT_API_URL": prefect_api}
    args = ("schedule", "--flow", "train", "--every", "10s", "--name", NAME, "--home", str(home))
    first = run_cli(*args, "--pool", POOL, env=env, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert f"'{POOL}' was missing: created it (type process)" in first.stderr
    assert f"prefect worker start --pool {POOL} --type process" in first.stderr
    assert "data.source 'wine.csv' is relative" in first.stderr and "--working-dir" in first.stderr
    # Registering again updates the deployment: now with the folder as the worker's directory.
    deployed = run_cli(*args, "--pool", POOL, "--working-dir", ".", env=env, cwd=tmp_path)
    assert deployed.returncode == 0, deployed.stderr
    assert "is relative" not in deployed.stderr
    deployment = httpx.get(f"{prefect_api}/deployments/name/mlrig-train/{NAME}", timeout=10)
    dep = deployment.json()
    assert dep["work_pool_name"] == POOL
    assert dep["parameters"]["home"] == str(home)  # absolute: the worker runs elsewhere
    assert dep["parameters"]["config"] == str(tmp_path / "mlrig.toml")
    assert dep["job_variables"] == {"working_dir": str(tmp_path)}

    started = time.monotonic()
    worker = Worker(prefect_api, POOL, tmp_path / "worker")
    try:
        completed: list[dict[str, Any]] = []
        deadline = time.monotonic() + 240
        while not completed and time.monotonic() < deadline:
            assert worker.proc.poll() is None, worker.output()
            runs = _ended_runs(prefect_api, dep["id"])
            failed = [r for r in runs if r["state_type"] in ("FAILED", "CRASHED")]
            assert not failed, f"{failed[0]['state']['message']}\n{worker.output()}"
            completed = [r for r in runs if r["state_type"] == "COMPLETED"]
            time.sleep(1)
        assert completed, f"no COMPLETED run in 240 s\n{worker.output()}"
        took = time.monotonic() - started
        # The worker ran it: the flow run names it, and its log shows the submission.
        assert completed[0]["work_pool_name"] == POOL
        assert f"submitting flow run '{completed[0]['id']}'" in worker.log_path.read_text()
    finally:
        stopped = run_cli("schedule", "stop", NAME, env=env)
        worker.stop()
    assert stopped.returncode == 0, stopped.stderr
    assert httpx.get(f"{prefect_api}/deployments/{dep['id']}", timeout=10).status_code == 404

    with sqlite3.connect(home / "mlflow.db") as db:
        versions = db.execute("SELECT name, version FROM model_versions").fetchall()
        aliases = db.execute("SELECT name, alias, version FROM registered_model_aliases").fetchall()
    assert ("wine-quality", 1) in versions
    assert ("wine-quality", "champion", 1) in aliases
    print(f"worker: first scheduled run COMPLETED {took:.1f} s after the worker started")
