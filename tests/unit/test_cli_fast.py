"""The CLI's cheap paths: --help must not import MLflow, Prefect, pandas or Evidently."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys

import pytest

from mlrig.config import parse_since
from mlrig.errors import ConfigError


def test_help_imports_no_heavy_library() -> None:
    code = (
        "import sys; from mlrig.cli.main import app\n"
        "try:\n    app(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('mlflow', 'prefect', 'pandas', 'sklearn', 'fastapi', 'evidently', 'scipy') if m in sys.modules]\n"
        "print('HEAVY', heavy)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert "HEAVY []" in out
    assert "run" in out and "serve" in out and "models" in out and "monitor" in out


def test_since_accepts_ages_and_iso_times() -> None:
    now = dt.datetime.now(dt.UTC)
    assert abs((now - parse_since("2h")).total_seconds() - 7200) < 5  # type: ignore[operator]
    assert parse_since("2026-01-02") == dt.datetime(2026, 1, 2, tzinfo=dt.UTC)
    assert parse_since(None) is None
    with pytest.raises(ConfigError, match="--since 'soon'"):
        parse_since("soon")


def test_run_pauses_the_cycle_collector_only_while_it_runs() -> None:
    import gc

    from mlrig.cli.options import collector_paused

    assert gc.isenabled()
    try:
        with collector_paused():
            assert not gc.isenabled()
        assert gc.isenabled() and gc.get_freeze_count() > 0  # the run's objects: not walked again
    finally:
        gc.unfreeze()
    gc.disable()
    try:
        with collector_paused():
            pass
        assert not gc.isenabled()  # a caller's own choice is left as it was
    finally:
        gc.enable()
