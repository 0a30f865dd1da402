"""The same pipeline through a real Prefect server: a flow run with one task run per step."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from tests.conftest import run_cli

pytestmark = pytest.mark.slow


def test_run_goes_through_prefect_when_an_api_is_configured(
    prefect_api: str, tmp_path: Path
) -> None:
    local = run_cli("run", "--home", str(tmp_path / "local"), "--json")
    assert local.returncode == 0, local.stderr
    done = run_cli(
        "run", "--home", str(tmp_path / "pf"), "--json", env={"PREFECT_API_URL": prefect_api}
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["mode"] == "prefect"
    assert result["metrics"] == json.loads(local.stdout)["metrics"]  # identical results

    runs = httpx.post(f"{prefect_api}/flow_runs/filter", json={}).json()
    flows = [r for r in runs if r["parameters"].get("home") == str((tmp_path / "pf").resolve())]
    assert len(flows) == 1
    assert flows[0]["state_type"] == "COMPLETED"
    params = flows[0]["parameters"]  # plain JSON: the run rebuilds its settings from them
    assert params["trainer"] == "train"
    assert params["home"] == str((tmp_path / "pf").resolve())
    assert params["overrides"]["train"]["model"] == "auto"
    assert params["overrides"]["tracking"]["model_name"] == "wine-quality"
    found = httpx.post(f"{prefect_api}/task_runs/filter", json={}).json()
    tasks = [t for t in found if t["flow_run_id"] == flows[0]["id"]]
    names = {t["task_key"].split("-")[0] for t in tasks}
    assert {
        "load_step",
        "validate_step",
        "prepare_step",
        "train_step",
        "evaluate_step",
        "champion_step",
        "log_register_step",
        "promote_step",
    } <= names
    assert all(t["state_type"] == "COMPLETED" for t in tasks)
