"""`kill -9` of `mlrig run` at each step that writes the registry, and of `mlrig tune` mid-study.

No fault-injection code lives in src/: each killed process gets a ``sitecustomize.py`` (first on
its PYTHONPATH) that wraps one real mlrig function so the process SIGKILLs itself at the step
named by ``CRASH_AT``. After each kill: no version is usable (champion/challenger, or `mlrig
models show`) without its complete record, the next run closes what the dead one left open
(its run KILLED, its pending version failed) and succeeds.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import run_cli

NAME = "wine-quality"

SITECUSTOMIZE = '''
"""Test-only: SIGKILL this process at the step CRASH_AT names (see test_crash_recovery.py)."""
import functools
import os
import signal

AT = os.environ.get("CRASH_AT", "")


def _die():
    os.kill(os.getpid(), signal.SIGKILL)


def _after(module, name, when=lambda *a, **k: True):
    real = getattr(module, name)

    @functools.wraps(real)
    def wrapped(*args, **kwargs):
        out = real(*args, **kwargs)
        if when(*args, **kwargs):
            _die()
        return out

    setattr(module, name, wrapped)


def _before(module, name, when):
    real = getattr(module, name)

    @functools.wraps(real)
    def wrapped(*args, **kwargs):
        if when(*args, **kwargs):
            _die()
        return real(*args, **kwargs)

    setattr(module, name, wrapped)


if AT:
    import mlrig.tracking.registry as registry
    import mlrig.tracking.runs as runs

    if AT == "run_start":
        _after(runs, "_open_run")
    elif AT == "model_log":
        _after(runs, "_log_model")
    elif AT == "register":
        _after(registry, "register_version")
    elif AT == "record_complete":
        _after(registry, "mark_record", lambda c, n, v, state: state == "complete")
    elif AT == "challenger":
        _after(registry, "set_alias", lambda c, n, alias, v: alias == "challenger")
    elif AT == "promotion":  # its record is written, the alias not yet moved
        _before(registry, "set_alias", lambda c, n, alias, v: alias == "champion")
    elif AT.startswith("trial"):  # trialN: die as trial N (0-based) starts
        import mlrig.training.tuning as tuning

        calls = []
        real_call = tuning.Objective.__call__

        def call(self, trial):
            calls.append(1)
            if len(calls) > int(AT.removeprefix("trial")):
                _die()
            return real_call(self, trial)

        tuning.Objective.__call__ = call
'''


def _crash_env(tmp_path: Path, at: str) -> dict[str, str]:
    hook = tmp_path / "crash-hook"
    hook.mkdir(exist_ok=True)
    (hook / "sitecustomize.py").write_text(SITECUSTOMIZE)
    path = os.pathsep.join(p for p in (str(hook), os.environ.get("PYTHONPATH", "")) if p)
    return {"PYTHONPATH": path, "CRASH_AT": at}


def _client(home: Path) -> Any:
    from mlflow import MlflowClient

    uri = f"sqlite:///{home.resolve() / 'mlflow.db'}"
    return MlflowClient(uri, uri)


def _runs(client: Any) -> list[Any]:
    exp = client.get_experiment_by_name("mlrig")
    return [] if exp is None else client.search_runs([exp.experiment_id], max_results=100)


def _versions(client: Any) -> list[Any]:
    return list(client.search_model_versions(f"name='{NAME}'"))


def _aliases(client: Any) -> dict[str, str]:
    try:
        return {k: str(v) for k, v in client.get_registered_model(NAME).aliases.items()}
    except Exception:  # no registered model yet
        return {}


def _assert_nothing_usable_is_incomplete(client: Any) -> None:
    """Every version an alias names has its whole record: gate tags and the complete mark."""
    from mlrig.tracking.tags import RECORD, decode_gate

    by_version = {str(mv.version): dict(mv.tags) for mv in _versions(client)}
    for alias, version in _aliases(client).items():
        tags = by_version[version]
        assert tags.get(RECORD) == "complete", (alias, version, tags)
        assert decode_gate(tags) is not None, (alias, version)


def _show(home: Path) -> dict[str, Any]:
    done = run_cli("models", "show", NAME, "--home", str(home), "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)  # type: ignore[no-any-return]


@pytest.mark.slow
@pytest.mark.parametrize(
    # run_start and record_complete (also in the hook) add little: model_log already leaves a
    # RUNNING run with no version, challenger a complete version with a dead run
    "at",
    ["model_log", "register", "challenger", "promotion"],
    ids=str,
)
def test_run_killed_at_each_step_leaves_nothing_half_registered(
    at: str, home: Path, tmp_path: Path
) -> None:
    killed = run_cli("run", "--home", str(home), "--quiet", env=_crash_env(tmp_path, at))
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    client = _client(home)
    dead_runs = [r.info.run_id for r in _runs(client) if r.info.status == "RUNNING"]
    assert len(dead_runs) == 1  # the killed run, left RUNNING by its dead process
    _assert_nothing_usable_is_incomplete(client)
    before = {str(mv.version): dict(mv.tags) for mv in _versions(client)}
    if at == "register":  # a version exists whose record was never completed
        shown = _show(home)["versions"]
        assert [(v["version"], v["record"], v["usable"]) for v in shown] == [
            ("1", "pending", False)
        ]
        refused = run_cli("models", "promote", NAME, "1", "-r", "try", "--home", str(home))
        assert refused.returncode == 4 and "record is pending" in refused.stderr, refused.stderr
    assert "champion" not in _aliases(client)  # the killed run was the first: never champion

    after = run_cli("run", "--home", str(home), "--quiet")
    assert after.returncode == 0, after.stderr[-2000:]
    client = _client(home)
    status = {r.info.run_id: r.info.status for r in _runs(client)}
    assert status[dead_runs[0]] == "KILLED"
    assert "RUNNING" not in status.values()
    _assert_nothing_usable_is_incomplete(client)
    states = {str(mv.version): dict(mv.tags).get("mlrig.record") for mv in _versions(client)}
    for version, tags in before.items():
        if tags.get("mlrig.record") == "pending":
            assert states[version] == "failed"
    champion = _aliases(client)["champion"]
    assert states[champion] == "complete"
    from mlrig.tracking.registry import champion_history

    assert champion_history(client, NAME)[-1].version == champion


@pytest.mark.slow
def test_tune_killed_mid_study_resumes_and_closes_its_parent_run(
    home: Path, tmp_path: Path
) -> None:
    """Killed as its 4th trial starts: the study keeps its 3 finished trials, the next `mlrig
    tune` closes the dead parent run (KILLED, not RUNNING forever), runs only the trials still
    missing and registers a complete version."""
    import optuna

    args = ("tune", "--home", str(home), "--trials", "6", "--quiet", "-m", "ridge")
    killed = run_cli(*args, env=_crash_env(tmp_path, "trial3"))
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    client = _client(home)
    parents = [r for r in _runs(client) if "mlrig.study" in r.data.tags]
    assert [p.info.status for p in parents] == ["RUNNING"]
    storage = f"sqlite:///{home.resolve() / 'optuna.db'}"
    study = optuna.load_study(study_name=NAME, storage=storage)
    finished = [t for t in study.trials if t.state.name in ("COMPLETE", "PRUNED")]
    assert len(finished) == 3

    again = run_cli(*args, "--json")
    assert again.returncode == 0, again.stderr[-2000:]
    result = json.loads(again.stdout)
    assert result["params"]["trials_this_run"] == 3
    assert result["params"]["study_trials"] == 6
    status = {r.info.run_id: r.info.status for r in _runs(_client(home))}
    assert status[parents[0].info.run_id] == "KILLED"
    assert status[result["run_id"]] == "FINISHED"
    _assert_nothing_usable_is_incomplete(_client(home))


def test_only_runs_under_the_held_lease_are_closed(home: Path) -> None:
    """Another home may share this MLflow store with its own prediction store (so its own
    lease): its RUNNING run may be alive and is left alone; a dead run under our lease is
    KILLED and its pending version failed; the run we were handed (``keep``) stays open."""
    from mlrig.tracking.registry import close_orphans
    from mlrig.tracking.tags import LEASE, MODEL, RECORD

    home.mkdir(parents=True)
    client = _client(home)
    exp = client.create_experiment("mlrig")
    client.create_registered_model(NAME)

    def run(lease: str) -> str:
        created = client.create_run(exp, tags={MODEL: NAME, LEASE: lease})
        client.create_model_version(
            NAME,
            f"{created.info.artifact_uri}/model",
            created.info.run_id,
            tags={RECORD: "pending"},
        )
        return str(created.info.run_id)

    dead, other, handed = run("ours"), run("theirs"), run("ours")
    client.set_registered_model_alias(NAME, "challenger", "1")
    killed, failed = close_orphans(client, NAME, exp, "ours", keep=handed)
    assert (killed, failed) == ([dead], ["1"])
    status = {r: client.get_run(r).info.status for r in (dead, other, handed)}
    assert status == {dead: "KILLED", other: "RUNNING", handed: "RUNNING"}
    records = [client.get_model_version(NAME, v).tags[RECORD] for v in ("1", "2", "3")]
    assert records == ["failed", "pending", "pending"]
    assert "challenger" not in client.get_registered_model(NAME).aliases
