"""The doctor's pure part: where each backend came from, artifact kinds, fixes, scrubbing."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlrig.config import load_settings
from mlrig.pipeline.doctor import (
    Check,
    Report,
    artifact_kind,
    render,
    scrub,
    scrubbed,
    secrets_in,
    store_fix,
    targets,
)


@pytest.mark.parametrize(
    ("location", "kind"),
    [
        ("mlflow-artifacts:/1/abc", "proxied"),
        ("mlflow-artifacts://server:5000/1", "proxied"),
        ("s3://bucket/prefix/1", "s3"),
        ("file:///home/me/.mlrig/artifacts", "local"),
        ("/home/me/.mlrig/artifacts", "local"),
        ("./mlruns/1", "local"),
        ("gs://bucket/x", "other"),
    ],
)
def test_artifact_locations_are_classified(location: str, kind: str) -> None:
    assert artifact_kind(location) == kind


def test_each_backend_names_the_setting_it_came_from(tmp_path: Path) -> None:
    env = {"MLFLOW_TRACKING_URI": "http://mlflow:5000", "MLRIG_PREDICTIONS_URL": "x"}
    # (the settings were built from the file/overrides; MLRIG_PREDICTIONS_URL said which won)
    settings = load_settings(
        None,
        {
            "home": tmp_path,
            "tracking": {"uri": "sqlite:///ignored.db"},
            "predictions": {"url": "postgresql+psycopg://u@db/p"},
            "tune": {"storage": "mysql+pymysql://u@db/optuna"},
        },
    )
    found = {t.backend: (t.source, t.kind) for t in targets(settings, env)}
    assert found["tracking"] == ("MLFLOW_TRACKING_URI", "server")  # MLflow's variable wins
    assert found["registry"] == ("= tracking", "server")
    assert found["predictions"] == ("MLRIG_PREDICTIONS_URL", "database")
    assert found["optuna"] == ("tune.storage", "database")
    defaults = {t.backend: t.source for t in targets(load_settings(None, {"home": tmp_path}), {})}
    assert defaults == {
        "tracking": "default",
        "registry": "= tracking",
        "predictions": "default",
        "optuna": "default",
    }


def test_fixes_name_the_setting_and_the_cause(tmp_path: Path) -> None:
    settings = load_settings(None, {"home": tmp_path, "predictions": {"url": "postgresql://h/p"}})
    predictions = targets(settings, {})[2]
    assert "MLRIG_PREDICTIONS_URL" in store_fix(predictions, "Connection refused")
    assert "start the database server" in store_fix(predictions, "Connection refused")
    assert store_fix(predictions, 'database "p" does not exist').startswith("create the database")
    auth = store_fix(predictions, "password authentication failed for user")
    assert auth.startswith("check the user and password")


def test_every_secret_is_scrubbed_even_inside_messages() -> None:
    env = {"AWS_SECRET_ACCESS_KEY": "awsKEY/42", "MLFLOW_TRACKING_PASSWORD": "mlpw", "HOME": "/r"}
    urls = ["postgresql://u:p%40ss@db/x", "http://u:SECRET5@h/api", "sqlite:///x.db"]
    secrets = secrets_in(env, urls)
    assert set(secrets) == {"awsKEY/42", "mlpw", "p%40ss", "p@ss", "SECRET5"}
    text = "login p@ss refused; key awsKEY/42 at postgresql://u:p%40ss@db/x (mlpw)"
    clean = scrub(text, secrets)
    assert not any(s in clean for s in secrets)
    assert "postgresql://u:***@db/x" in clean
    report = scrubbed(
        Report((Check("t", "http://u:SECRET5@h/api", "fail", "mlpw", "SECRET5"),)), secrets
    )
    assert "SECRET5" not in str(report) and "mlpw" not in str(report)


def test_exit_code_and_rendering() -> None:
    ok = Report((Check("tracking", "sqlite:///x.db (default)", "ok", "reachable"),))
    assert ok.exit_code == 0 and "every configured backend is reachable" in render(ok)
    bad = Report(
        (
            Check("tracking", "sqlite:///x.db (default)", "ok", "reachable"),
            Check("artifacts", "?", "skip", "unknown"),
            Check("predictions", "postgresql://h/p (predictions.url)", "fail", "refused", "fix it"),
        )
    )
    assert bad.exit_code == 4 and not bad.ok
    shown = render(bad)
    assert "FAIL  predictions" in shown and "fix: fix it" in shown and "--    artifacts" in shown
    assert bad.as_dict()["ok"] is False


def test_doctor_imports_neither_mlflow_nor_prefect(tmp_path: Path) -> None:
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from mlrig.cli.main import app\n"
        f"done = CliRunner().invoke(app, ['doctor', '--home', {str(tmp_path / 'h')!r}])\n"
        "heavy = [m for m in ('mlflow', 'prefect', 'pandas', 'sklearn') if m in sys.modules]\n"
        "print('RESULT', done.exit_code, heavy)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert "RESULT 0 []" in out.stdout, out.stdout + out.stderr
