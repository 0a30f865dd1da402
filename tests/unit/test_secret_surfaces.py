"""Each place a URL leaves mlrig — flow and deployment parameters, the ui child's command line,
the --json summary, the tracking probe — carries no credential."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mlrig.config import load_settings
from mlrig.errors import ConfigError, TrackingError

PW = "Unit-S3cr3t"
DB = f"postgresql+psycopg://mlrig:{PW}@db.internal:5432/mlflow"
DATA = f"https://bucket.s3.amazonaws.com/x.csv?X-Amz-Credential=AK&X-Amz-Signature={PW}"


@pytest.mark.parametrize(
    ("parameters", "named"),
    [
        ({"overrides": {"data": {"source": DATA}}}, "overrides.data.source"),
        ({"overrides": {"tracking": {"uri": DB}}}, "overrides.tracking.uri"),
        # masked as `mlrig run` records them: cannot be fetched, so refused too
        ({"overrides": {"tracking": {"uri": "postgresql://u:***@h/db"}}}, "overrides.tracking.uri"),
        ({"overrides": {"tune": {"storage": "mysql://u:***@h/o"}}}, "overrides.tune.storage"),
        ({"urls": ["https://h/ok.csv", DATA]}, "urls.1"),
    ],
)
def test_flow_and_deployment_parameters_with_credentials_are_refused(
    parameters: dict[str, Any], named: str
) -> None:
    from mlrig.pipeline.flows import flow_settings, secret_parameters
    from mlrig.pipeline.schedule import refuse_secrets

    assert secret_parameters(parameters) == [named]
    with pytest.raises(ConfigError) as info:
        refuse_secrets(parameters)
    assert named in str(info.value) and "config file" in str(info.value)
    assert PW not in str(info.value)
    if "overrides" in parameters:
        with pytest.raises(ConfigError, match=r"flow parameter overrides\.") as flow_info:
            flow_settings(None, None, parameters["overrides"])
        assert "environment" in str(flow_info.value) and PW not in str(flow_info.value)


def test_parameters_without_credentials_pass(tmp_path: Path) -> None:
    from mlrig.pipeline.flows import flow_settings, secret_parameters
    from mlrig.pipeline.runner import flow_overrides
    from mlrig.pipeline.schedule import refuse_secrets

    clean = {"config": "/etc/mlrig.toml", "home": str(tmp_path), "overrides": None}
    assert secret_parameters(clean) == []
    refuse_secrets(clean)
    settings = load_settings(
        None, {"home": tmp_path, "data": {"source": DATA}, "tracking": {"uri": DB}}
    )
    shown = flow_overrides(settings)  # what `mlrig run` hands Prefect in prefect mode
    assert PW not in json.dumps(shown)
    assert shown["data"]["source"].endswith("X-Amz-Signature=***")
    ok = flow_settings(None, str(tmp_path), {"data": {"source": "https://h/x.csv"}})
    assert ok.data.source == "https://h/x.csv"


def test_the_ui_child_gets_the_store_through_its_environment(tmp_path: Path) -> None:
    from mlrig.cli.ui import ui_argv, ui_env

    settings = load_settings(None, {"home": tmp_path, "tracking": {"uri": DB}})
    argv = ui_argv("127.0.0.1", 5001)
    assert PW not in " ".join(argv) and "--backend-store-uri" not in argv
    env = ui_env(settings, {"PATH": "/usr/bin"})
    # the variables mlflow's server/ui CLI reads for --backend-store-uri/--registry-store-uri
    assert env["MLFLOW_BACKEND_STORE_URI"] == DB
    assert env["MLFLOW_REGISTRY_STORE_URI"] == DB
    assert env["PATH"].endswith("/usr/bin")


@pytest.mark.slow  # imports mlflow.cli (up to ≈12 s on a loaded machine)
def test_mlflow_reads_those_variables() -> None:
    """Guards against an MLflow upgrade renaming them: the click options' envvar."""
    from mlflow.cli import server

    envvars = {p.name: p.envvar for p in server.params}
    assert envvars["backend_store_uri"] == "MLFLOW_BACKEND_STORE_URI"
    assert envvars["registry_store_uri"] == "MLFLOW_REGISTRY_STORE_URI"


def test_the_json_summary_is_redacted() -> None:
    from mlrig.cli.summary import shown_dict
    from mlrig.pipeline.results import RunResult

    result = RunResult(
        mode="local",
        task="regression",
        data_source=DATA,
        data_digest="d",
        rows=10,
        train_rows=7,
        test_rows=3,
        eval_set="new",
        features=("a",),
        categorical=(),
        target="y",
        params={},
        metrics={"rmse": 1.0},
        run_id="r",
        experiment="e",
        model_name="m",
        version="1",
        promoted=True,
        champion_version="1",
        decision={},
        tracking_uri=DB,
        notes=[f"fetched {DATA}"],
    )
    out = json.dumps(shown_dict(result))
    assert PW not in out
    assert "mlrig:***@db.internal" in out and "X-Amz-Signature=***" in out


def test_sqlite_and_file_stores_are_not_probed() -> None:
    from mlrig.tracking.store import probe_store, store_kind

    assert store_kind("sqlite:////tmp/x.db") is None
    assert store_kind("file:///tmp/mlruns") is None
    assert store_kind("databricks") is None
    assert store_kind(DB) == "database" and store_kind("mysql+pymysql://u@h/d") == "database"
    assert store_kind("https://mlflow.example") == "server"
    probe_store("sqlite:////nonexistent/dir/x.db", 1, 5, sleep=pytest.fail)


def test_a_missing_driver_fails_at_once_without_retries() -> None:
    """A dialect whose DBAPI module is not installed is a setup problem, not a blip."""
    from mlrig.tracking.store import probe_store

    slept: list[float] = []
    with pytest.raises(TrackingError) as info:
        probe_store(f"mysql://u:{PW}@127.0.0.1:1/x", 1, 3, sleep=slept.append)
    assert slept == []
    assert "mysql://u:***@127.0.0.1:1/x: cannot connect (" in str(info.value)
    assert PW not in str(info.value)
