"""The champion's record under concurrency, long histories and moves that raced a scoring.

Real stores only: an MLflow registry on SQLite or on the session PostgreSQL (where MLflow's
tag value column holds 5,000 characters), the prediction store's leases on SQLite, and real
`mlrig models promote` processes.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tests.conftest import _SCRUB, MLRIG

NAME = "m"


class BlockingClient:
    """A real MlflowClient whose write of the ``champion`` alias waits until the test lets it
    go: a store that blocks on demand, so another move can be tried while one is half done."""

    def __new__(cls, uri: str) -> Any:
        from mlflow import MlflowClient

        class _Client(MlflowClient):
            entered = threading.Event()
            release = threading.Event()

            def set_registered_model_alias(self, name: str, alias: str, version: Any) -> None:
                if alias == "champion":
                    self.entered.set()
                    assert self.release.wait(60), "the test never released the blocked move"
                super().set_registered_model_alias(name, alias, version)

        return _Client(uri, uri)


def _registry(uri: str, versions: int) -> Any:
    """A client on ``uri`` and model NAME with ``versions`` versions, each from its own run."""
    from mlflow import MlflowClient

    client = MlflowClient(uri, uri)
    exp = client.create_experiment(f"e{os.getpid()}-{threading.get_ident()}")
    client.create_registered_model(NAME)
    for _ in range(versions):
        run = client.create_run(exp)
        client.create_model_version(NAME, f"{run.info.artifact_uri}/model", run.info.run_id)
        client.set_terminated(run.info.run_id)
    return client


def _settings(home: Path, registry: str | None = None) -> Any:
    from mlrig.config import load_settings

    return load_settings(None, {"home": str(home), "tracking": {"uri": registry}})


@pytest.fixture
def sqlite_uri(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


@pytest.fixture
def pg_mlflow_uri(postgres_url: str) -> str:
    """A fresh database on the session PostgreSQL, as MLflow's tracking + registry store."""
    import uuid

    db = f"mlflow_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f"CREATE DATABASE {db}"))
    admin.dispose()
    return postgres_url.rsplit("/", 1)[0] + f"/{db}"


@pytest.mark.slow
def test_sixty_moves_and_a_20000_character_reason_fit_postgresql(pg_mlflow_uri: str) -> None:
    """The old single history tag overflowed MLflow's 5,000-character column on PostgreSQL
    after ~25 moves, after the alias had already moved. Now: 60 moves, one with a 20,000-
    character reason, every one recorded in order, every tag value within 5,000 characters,
    and the full long reason kept as an artifact the record points at."""
    from mlrig.tracking.registry import CHAMPION, alias_version, champion_history, move_champion

    client = _registry(pg_mlflow_uri, 3)
    long_reason = "because " + "x" * 20_000
    for i in range(60):
        reason = long_reason if i == 30 else f"move {i}"
        move_champion(client, NAME, str(i % 3 + 1), "promote", "tester", reason)
    history = champion_history(client, NAME)
    assert len(history) == 60
    assert [h.version for h in history] == [str(i % 3 + 1) for i in range(60)]
    assert [h.previous for h in history] == [None] + [str(i % 3 + 1) for i in range(59)]
    assert alias_version(client, NAME, CHAMPION) == "3"  # move 59: version 59 % 3 + 1
    cut = history[30].reason
    assert cut.startswith("because xxx") and "20008 characters" in cut and len(cut) <= 3000
    tags = client.get_registered_model(NAME).tags
    versions = [client.get_model_version(NAME, v) for v in ("1", "2", "3")]
    values = [*tags.values(), *(v for mv in versions for v in mv.tags.values())]
    assert max(len(v) for v in values) <= 5000
    path = cut.split("artifact ", 1)[1].split(" of run ", 1)[0]
    run_id = client.get_model_version(NAME, "1").run_id
    full = Path(client.download_artifacts(run_id, path, str(Path.cwd())))
    assert full.read_text() == long_reason


def test_old_single_tag_history_is_still_read_before_new_moves(sqlite_uri: str) -> None:
    import json

    from mlrig.tracking.registry import champion_history, move_champion
    from mlrig.tracking.tags import CHAMPION_HISTORY

    client = _registry(sqlite_uri, 2)
    old = [
        {"version": "1", "previous": None, "action": "gate", "by": "mlrig", "reason": "first"},
    ]
    old[0]["at"] = "2020-01-01T00:00:00+00:00"
    client.set_registered_model_tag(NAME, CHAMPION_HISTORY, json.dumps(old))
    client.set_registered_model_alias(NAME, "champion", "1")
    move_champion(client, NAME, "2", "promote", "tester", "second")
    history = champion_history(client, NAME)
    assert [(h.version, h.previous, h.reason) for h in history] == [
        ("1", None, "first"),
        ("2", "1", "second"),
    ]


def test_a_move_against_a_champion_that_moved_since_scoring_is_refused(sqlite_uri: str) -> None:
    """Compare-and-set: the challenger was weighed against version 1, version 3 is champion
    now, so version 2 is not promoted and no move is recorded."""
    from mlrig.tracking.registry import (
        CHAMPION,
        ChampionMovedError,
        alias_version,
        champion_history,
        move_champion,
    )

    client = _registry(sqlite_uri, 3)
    move_champion(client, NAME, "1", "gate", "mlrig", "first")
    move_champion(client, NAME, "3", "promote", "someone", "by hand")
    with pytest.raises(ChampionMovedError, match="moved from version 1 to version 3"):
        move_champion(client, NAME, "2", "gate", "mlrig", "better", expected="1")
    assert alias_version(client, NAME, CHAMPION) == "3"
    assert [h.version for h in champion_history(client, NAME)] == ["1", "3"]


@pytest.mark.parametrize("homes", ["one home", "two homes sharing only the registry"])
def test_a_second_gate_waits_for_the_first_and_then_refuses(
    homes: str, sqlite_uri: str, tmp_path: Path
) -> None:
    """Two gates scored the same champion (v1). A's move is held open inside the registry
    write (BlockingClient) while it holds the promotion lease; B must not get in until A is
    done, and then finds the champion moved and refuses: the later gate never overwrites the
    earlier one blind, and the history keeps both real moves only. With two homes (two
    prediction stores) the lease still excludes B: it lives in the registry's database."""
    from mlrig.pipeline.runner import promotion_lease
    from mlrig.tracking.registry import (
        CHAMPION,
        ChampionMovedError,
        alias_version,
        champion_history,
        move_champion,
    )

    plain = _registry(sqlite_uri, 3)
    move_champion(plain, NAME, "1", "gate", "mlrig", "first")
    blocking = BlockingClient(sqlite_uri)
    if homes == "one home":
        settings_a = settings_b = _settings(tmp_path / ".mlrig")
    else:
        settings_a = _settings(tmp_path / "a", sqlite_uri)
        settings_b = _settings(tmp_path / "b", sqlite_uri)
    outcome: dict[str, Any] = {}
    b_inside = threading.Event()

    def gate(
        label: str, settings: Any, client: Any, version: str, inside: threading.Event | None
    ) -> None:
        try:
            with promotion_lease(settings, NAME, f"gate {label}"):
                if inside is not None:
                    inside.set()
                move_champion(client, NAME, version, "gate", label, "better", expected="1")
            outcome[label] = "moved"
        except ChampionMovedError as exc:
            outcome[label] = exc

    a = threading.Thread(target=gate, args=("A", settings_a, blocking, "2", None))
    a.start()
    assert blocking.entered.wait(60)
    b = threading.Thread(target=gate, args=("B", settings_b, plain, "3", b_inside))
    b.start()
    # passes at once when the lease works; with no lease B would be inside well within this
    assert not b_inside.wait(2.0), "B entered the promotion while A held it"
    blocking.release.set()
    a.join(60)
    b.join(90)
    assert outcome["A"] == "moved"
    assert isinstance(outcome["B"], ChampionMovedError)
    assert (outcome["B"].expected, outcome["B"].current) == ("1", "2")
    assert alias_version(plain, NAME, CHAMPION) == "2"
    assert [(h.version, h.previous) for h in champion_history(plain, NAME)] == [
        ("1", None),
        ("2", "1"),
    ]


@pytest.mark.slow
def test_concurrent_hand_promotions_lose_no_history_entry(tmp_path: Path) -> None:
    """Four `mlrig models promote` processes at once (the old history was a read-modify-write
    of one tag: concurrent moves dropped entries). Every move is recorded, and the moves form
    one chain: each one's ``previous`` is the version the one before it set."""
    from mlrig.tracking.registry import CHAMPION, alias_version, champion_history, move_champion

    home = tmp_path / ".mlrig"
    home.mkdir()
    uri = f"sqlite:///{home / 'mlflow.db'}"  # the home's embedded MLflow store
    client = _registry(uri, 5)
    move_champion(client, NAME, "1", "gate", "mlrig", "first")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLRIG_") and k not in _SCRUB}
    procs = [
        subprocess.Popen(
            [MLRIG, "models", "promote", NAME, str(v), "-r", f"hand {v}", "--home", str(home)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for v in (2, 3, 4, 5)
    ]
    outs = [p.communicate(timeout=180) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0, 0], outs
    history = champion_history(client, NAME)
    assert len(history) == 5
    assert sorted(h.version for h in history[1:]) == ["2", "3", "4", "5"]
    for before, after in itertools.pairwise(history):
        assert after.previous == before.version
    assert alias_version(client, NAME, CHAMPION) == history[-1].version
