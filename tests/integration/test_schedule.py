"""`mlrig schedule` on a real Prefect server: runs on time, never two at once, pause, resume,
stop; the local server under the home; the store lease that a scheduled run respects."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import MLRIG, run_cli

NAME = "mlrig-train-wine-quality"


def _env(**extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("MLRIG_", "MLFLOW_")) and k != "PREFECT_API_URL"
    }
    return {**env, **extra}


def _until(what: str, check: Callable[[], Any], timeout: float, every: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(every)
    raise AssertionError(f"not within {timeout} s: {what}")


def _when(text: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(text) if text else None


class Api:
    def __init__(self, url: str) -> None:
        self.url = url

    def deployment(self, flow: str, name: str) -> dict[str, Any] | None:
        r = httpx.get(f"{self.url}/deployments/name/{flow}/{name}", timeout=10)
        return r.json() if r.status_code == 200 else None

    def runs(self, deployment_id: str) -> list[dict[str, Any]]:
        body = {"flow_runs": {"deployment_id": {"any_": [deployment_id]}}, "limit": 200}
        runs: list[dict[str, Any]] = httpx.post(
            f"{self.url}/flow_runs/filter", json=body, timeout=10
        ).json()
        return runs

    def task_runs(self, flow_run_ids: list[str]) -> list[dict[str, Any]]:
        body = {"flow_runs": {"id": {"any_": flow_run_ids}}, "limit": 200}
        found: list[dict[str, Any]] = httpx.post(
            f"{self.url}/task_runs/filter", json=body, timeout=10
        ).json()
        return found


def _of(runs: list[dict[str, Any]], *states: str) -> list[dict[str, Any]]:
    return [r for r in runs if r["state_type"] in states]


@pytest.fixture
def runner(prefect_api: str, tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`mlrig schedule --every 2s --flow train` serving in the foreground; a train run takes
    longer than 2 s, so runs fall due while one is running."""
    log = (tmp_path / "runner.log").open("wb")
    proc = subprocess.Popen(
        [MLRIG, "schedule", "--every", "2s", "--flow", "train", "--home", str(tmp_path / "h")],
        env=_env(PREFECT_API_URL=prefect_api),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    yield proc
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    log.close()


@pytest.mark.slow
def test_schedule_runs_never_overlap_pause_resume_stop(
    prefect_api: str, runner: subprocess.Popen[bytes], tmp_path: Path
) -> None:
    api = Api(prefect_api)
    log = tmp_path / "runner.log"
    deployment = _until(
        f"deployment {NAME} registered ({log.read_text() if log.exists() else ''})",
        lambda: api.deployment("mlrig-train", NAME),
        60,
    )
    assert deployment["concurrency_options"]["collision_strategy"] == "CANCEL_NEW"
    assert deployment["global_concurrency_limit"]["limit"] == 1
    assert deployment["parameters"]["home"] == str(tmp_path / "h")
    dep_id = deployment["id"]

    # The first run outlives the interval: the runs due meanwhile are cancelled.
    _until(
        "a running run and a cancelled one",
        lambda: (runs := api.runs(dep_id)) and _of(runs, "RUNNING") and _of(runs, "CANCELLED"),
        120,
    )

    # Pause: once the running run ends, nothing more starts.
    paused = run_cli("schedule", "pause", NAME, env={"PREFECT_API_URL": prefect_api})
    assert paused.returncode == 0, paused.stderr
    assert api.deployment("mlrig-train", NAME)["paused"] is True  # type: ignore[index]
    _until("the last run to end", lambda: not _of(api.runs(dep_id), "RUNNING", "PENDING"), 60)
    started = {r["id"] for r in api.runs(dep_id) if r["start_time"]}
    time.sleep(4)  # two intervals
    runs = api.runs(dep_id)
    assert {r["id"] for r in runs if r["start_time"]} == started
    assert not _of(runs, "SCHEDULED", "PENDING", "RUNNING")

    # Resume: runs start again.
    resumed = run_cli("schedule", "resume", NAME, env={"PREFECT_API_URL": prefect_api})
    assert resumed.returncode == 0, resumed.stderr
    completed = {r["id"] for r in _of(runs, "COMPLETED")}
    _until(
        "a run after resume",
        lambda: {r["id"] for r in _of(api.runs(dep_id), "COMPLETED")} - completed,
        90,
        1,
    )

    # Stop: the deployment is gone and the runner exits on its own.
    runs = api.runs(dep_id)
    stopped = run_cli("schedule", "stop", NAME, env={"PREFECT_API_URL": prefect_api})
    assert stopped.returncode == 0, stopped.stderr
    assert api.deployment("mlrig-train", NAME) is None
    assert runner.wait(timeout=30) == 0
    assert "runner stopped (deployment deleted)" in log.read_text()

    # Never two at once: completed runs follow one another; the cancelled ones ran no step.
    done = sorted(_of(runs, "COMPLETED"), key=lambda r: r["start_time"])
    assert len(done) >= 2
    for before, after in itertools.pairwise(done):
        assert _when(before["end_time"]) <= _when(after["start_time"])  # type: ignore[operator]
    cancelled = _of(runs, "CANCELLED")
    assert cancelled, "runs due while one was running should have been cancelled"
    assert all("concurrency limit" in (r["state"]["message"] or "") for r in cancelled)
    assert api.task_runs([r["id"] for r in cancelled]) == []


@pytest.mark.slow
def test_pool_deployment_is_registered_for_workers(prefect_api: str, tmp_path: Path) -> None:
    env = _env(PREFECT_API_URL=prefect_api)
    pool = subprocess.run(
        [
            str(Path(MLRIG).parent / "prefect"),
            "work-pool",
            "create",
            "mlrig-test",
            "--type",
            "process",
        ],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert pool.returncode == 0, pool.stdout + pool.stderr
    args = ("schedule", "--cron", "0 3 * * *", "--name", "nightly", "--home", str(tmp_path / "h"))
    done = run_cli(*args, "--pool", "mlrig-test", env={"PREFECT_API_URL": prefect_api})
    assert done.returncode == 0, done.stderr
    assert "prefect worker start --pool mlrig-test" in done.stderr
    deployment = Api(prefect_api).deployment("mlrig-loop", "nightly")
    assert deployment is not None
    assert deployment["work_pool_name"] == "mlrig-test"
    assert deployment["entrypoint"] == "mlrig.pipeline.flows.loop_flow"  # imported by workers
    assert deployment["schedules"][0]["schedule"]["cron"] == "0 3 * * *"
    assert deployment["concurrency_options"]["collision_strategy"] == "CANCEL_NEW"
    # A missing pool is created, as a process pool, and said so.
    missing = run_cli(*args, "--pool", "new-pool", env={"PREFECT_API_URL": prefect_api})
    assert missing.returncode == 0, missing.stderr
    assert "'new-pool' was missing: created it (type process)" in missing.stderr
    created = httpx.get(f"{prefect_api}/work_pools/new-pool", timeout=10).json()
    assert created["type"] == "process"
    assert created["base_job_template"]["job_configuration"]["command"]  # Prefect's default


def test_unreachable_prefect_api_is_named_with_its_fix(tmp_path: Path) -> None:
    from tests.services import free_port

    url = f"http://u:SECRET@127.0.0.1:{free_port()}/api"
    args = ("schedule", "--every", "1h", "--pool", "p", "--home", str(tmp_path / "h"))
    done = run_cli(*args, env={"PREFECT_API_URL": url}, timeout=60)
    assert done.returncode == 2, done.stderr
    assert "no Prefect server answers there" in done.stderr
    assert "prefect server start" in done.stderr
    assert "SECRET" not in done.stderr + done.stdout


HOLD = """
import sys
from mlrig.predictions.locks import acquire
from mlrig.predictions.store import PredictionStore
store = PredictionStore(sys.argv[1])
store.create_schema()
lease = acquire(store, "train:wine-quality", "a test holding the lease", ttl=60)
print("held", flush=True)
sys.stdin.read()
lease.release()
"""


@pytest.mark.slow
def test_no_training_while_another_process_holds_the_lease(
    prefect_api: str, tmp_path: Path
) -> None:
    home = tmp_path / "h"
    home.mkdir()
    with subprocess.Popen(
        [sys.executable, "-c", HOLD, f"sqlite:///{home / 'predictions.db'}"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as holder:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        done = run_cli("run", "--home", str(home), env={"PREFECT_API_URL": prefect_api})
        local = run_cli("run", "--home", str(home), "--orchestrator", "local")
        assert holder.stdin is not None
        holder.stdin.close()
    for refused in (done, local):  # BusyError
        assert refused.returncode == 7, refused.stderr
        assert f"is held by pid {holder.pid}" in refused.stderr
        assert "a test holding the lease" in refused.stderr
    runs = httpx.post(
        f"{prefect_api}/flow_runs/filter",
        json={"limit": 200},
        timeout=10,
    ).json()
    mine = [r for r in runs if r["parameters"].get("home") == str(home)]
    assert [r["state_type"] for r in mine] == ["COMPLETED"]  # the flow run ended, untrained
    assert not (home / "mlflow.db").exists()


@pytest.mark.slow
def test_local_server_under_the_home_is_started_once_then_reused(tmp_path: Path) -> None:
    home = tmp_path / "h"
    first = run_cli("ui", "--prefect", "--no-open", "--home", str(home), env=_env())
    try:
        assert first.returncode == 0, first.stderr
        assert "started local" in first.stderr
        url = first.stdout.strip()
        assert httpx.get(f"{url}/api/health", timeout=5).status_code == 200
        assert (home / "prefect" / "server.json").is_file()
        assert (home / "prefect" / "prefect.db").is_file()
        again = run_cli("ui", "--prefect", "--no-open", "--home", str(home), env=_env())
        assert again.returncode == 0, again.stderr
        assert "reusing local" in again.stderr and again.stdout.strip() == url
        listed = run_cli("schedule", "list", "--home", str(home), env=_env())
        assert listed.returncode == 0 and "no mlrig schedules" in listed.stderr
    finally:
        stopped = run_cli("schedule", "server", "stop", "--home", str(home), env=_env())
    assert stopped.returncode == 0, stopped.stderr
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{url}/api/health", timeout=2)


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--every", "2x"], "--every '2x'"),
        (["--cron", "0 3 * *"], "--cron '0 3 * *'"),
        (["--every", "2m", "--cron", "0 3 * * *"], "exactly one of --every"),
        ([], "exactly one of --every"),
        (["--every", "2m", "--flow", "nightly"], "--flow 'nightly'"),
    ],
)
def test_bad_schedule_options_are_refused_naming_the_option(args: list[str], named: str) -> None:
    done = run_cli("schedule", *args)
    assert done.returncode == 2
    assert named in done.stderr


@pytest.mark.slow
def test_unknown_schedule_is_named(prefect_api: str) -> None:
    done = run_cli("schedule", "pause", "no-such", env={"PREFECT_API_URL": prefect_api})
    assert done.returncode == 2
    assert "deployment 'no-such'" in done.stderr


LOOP = """
import json, sys
from mlrig.pipeline.flows import loop_flow
try:
    print(json.dumps(loop_flow(home=sys.argv[1])))
except NotImplementedError:
    print("null")
"""


@pytest.mark.slow
def test_loop_flow_runs_one_pass(prefect_api: str, trained_home: Path) -> None:
    # In a process of its own: Prefect in the test process would flush its logs to the
    # session's server after it stopped, for a minute.
    done = subprocess.run(
        [sys.executable, "-c", LOOP, str(trained_home)],
        env=_env(PREFECT_API_URL=prefect_api),
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    if out is None:
        pytest.skip("loop_pass is not written yet")
    assert out["model"] == "wine-quality"
    assert out["trigger"] == "schedule"
