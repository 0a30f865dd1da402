"""`mlrig monitor` on a real MLflow store and a real prediction log: verdicts both ways, the
named drifted column, feedback joins, degraded detection, exit codes, insufficient data, the
MLflow monitoring run, Evidently's report, a window across a swap, and PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.conftest import log_traffic, prediction_store, predictor_of, run_cli, wine_frame

pytestmark = pytest.mark.slow
MODEL = "wine-quality"


def _monitor(home: Path, *args: str, env: dict[str, str] | None = None) -> tuple[int, dict]:  # type: ignore[type-arg]
    done = run_cli("monitor", "--home", str(home), "--json", *args, env=env)
    assert done.returncode in (0, 1), done.stderr
    return done.returncode, json.loads(done.stdout)


def test_red_wine_traffic_is_not_drift_and_white_wine_is(trained_home: Path) -> None:
    from mlflow import MlflowClient

    store, predictor = prediction_store(trained_home), predictor_of(trained_home)
    red = wine_frame("red").sample(600, random_state=3)
    log_traffic(store, predictor, red, red["quality"].to_numpy())
    code, result = _monitor(trained_home)
    assert code == 0 and result["verdict"] == "ok", result
    version = result["versions"][0]
    assert version["drift"]["drifted"] == 0 and version["rows"] == 600
    assert version["quality"]["labelled"] == 600 and version["quality"]["degraded"] is False
    assert {c["test"] for c in version["drift"]["columns"]} == {"wasserstein"}

    white = wine_frame("white").sample(800, random_state=4)
    log_traffic(store, predictor, white)
    code, result = _monitor(trained_home, "--window", "800")
    drift = result["versions"][0]["drift"]
    assert code == 1 and result["verdict"] == "drift"
    assert drift["dataset_drift"] and drift["share"] >= 0.5 and result["window"]["rows"] == 800

    # every pass is an MLflow run in <model>-monitoring, tagged with the version, with the report
    uri = f"sqlite:///{trained_home.resolve() / 'mlflow.db'}"
    client = MlflowClient(uri, uri)
    experiment = client.get_experiment_by_name(f"{MODEL}-monitoring")
    runs = client.search_runs([experiment.experiment_id], order_by=["start_time DESC"])
    assert len(runs) == 2 and runs[0].info.run_id == result["mlflow_run_id"]
    latest = runs[0].data
    assert latest.tags["mlrig.model_version"] == "1"
    assert latest.tags["mlrig.monitoring.verdict"] == "drift"
    assert latest.metrics["drift_share"] == pytest.approx(drift["share"])
    assert latest.metrics["drift_score.alcohol"] == pytest.approx(
        next(c["score"] for c in drift["columns"] if c["column"] == "alcohol")
    )
    files = {f.path for f in client.list_artifacts(runs[0].info.run_id, "monitoring")}
    assert {"monitoring/report.html", "monitoring/result.json"} <= files


def test_one_drifted_column_is_named(trained_home: Path) -> None:
    red = wine_frame("red").sample(800, random_state=5)
    log_traffic(prediction_store(trained_home), predictor_of(trained_home), red.assign(alcohol=red["alcohol"] + 2.5))
    done = run_cli("monitor", "--home", str(trained_home), "--no-track")
    assert done.returncode == 0, done.stderr  # one column of eleven: no dataset drift
    alcohol = next(line for line in done.stdout.splitlines() if "alcohol" in line)
    assert "yes" in alcohol
    others = [line for line in done.stdout.splitlines() if "wasserstein" in line and "alcohol" not in line]
    assert len(others) == 10 and not any("yes" in line for line in others)
    assert "1/11 features" in done.stdout and "verdict   ok" in done.stdout


def test_feedback_that_disagrees_makes_a_regression_model_degraded(trained_home: Path) -> None:
    red = wine_frame("red").sample(400, random_state=6)
    log_traffic(prediction_store(trained_home), predictor_of(trained_home), red, red["quality"].to_numpy() + 2)
    code, result = _monitor(trained_home, "--no-track")
    quality = result["versions"][0]["quality"]
    assert code == 1 and result["verdict"] == "degraded"
    assert quality["degraded"] is True and quality["live"] > quality["offline"] * 1.1
    assert quality["labelled"] == 400 and quality["metric"] == "rmse"


def test_too_little_data_is_insufficient_not_a_verdict(trained_home: Path) -> None:
    red = wine_frame("white").head(12)  # even a foreign population: too few rows to say
    log_traffic(prediction_store(trained_home), predictor_of(trained_home), red, red["quality"].to_numpy())
    code, result = _monitor(trained_home, "--no-track")
    assert code == 0 and result["verdict"] == "insufficient_data"
    version = result["versions"][0]
    assert version["drift"] is None and "12 predictions, 100 needed" in version["notes"][0]
    assert "12 labelled predictions, 30 needed" in version["quality"]["reason"]


def test_errors_exit_2_and_name_the_model(trained_home: Path) -> None:
    done = run_cli("monitor", "--home", str(trained_home), "--model", "nope@champion")
    assert done.returncode == 2 and "nope" in done.stderr
    done = run_cli("monitor", "--home", str(trained_home), "--since", "yesterday")
    assert done.returncode == 2 and "--since 'yesterday'" in done.stderr


def test_evidently_report_on_a_stated_sample(trained_home: Path, tmp_path: Path) -> None:
    red = wine_frame("red").sample(700, random_state=7)
    log_traffic(prediction_store(trained_home), predictor_of(trained_home), red, red["quality"].to_numpy())
    (tmp_path / "mlrig.toml").write_text("[monitoring]\nreport_rows = 300\n")
    out = tmp_path / "report.html"
    code, result = _monitor(trained_home, "--html", str(out), "--config", str(tmp_path / "mlrig.toml"))
    assert code == 0 and result["html_rows"] == 300
    html = out.read_text()
    assert len(html) > 100_000 and "alcohol" in html and "Regression Model Performance" in html


def test_a_window_across_a_model_swap_is_assessed_per_version(trained_home: Path) -> None:
    store = prediction_store(trained_home)
    red = wine_frame("red").sample(frac=1.0, random_state=8)
    log_traffic(store, predictor_of(trained_home), red.head(300))
    done = run_cli("run", "--home", str(trained_home), "--alpha", "0.05", "--quiet")
    assert done.returncode == 0, done.stderr
    log_traffic(store, predictor_of(trained_home, f"{MODEL}/2"), red.iloc[300:700])
    code, result = _monitor(trained_home, "--no-track")
    assert code == 0, result
    assert [v["version"] for v in result["versions"]] == ["1", "2"]
    assert [v["rows"] for v in result["versions"]] == [300, 400]
    assert "compared with its own reference" in result["notes"][0]
    _, pinned = _monitor(trained_home, "--no-track", "--model", f"{MODEL}/2")
    assert [v["version"] for v in pinned["versions"]] == ["2"] and pinned["window"]["rows"] == 400


def test_classifier_probabilities_give_live_auc_and_ks(tmp_path: Path) -> None:
    home = tmp_path / ".mlrig"
    config = tmp_path / "mlrig.toml"
    config.write_text('[data]\npositive_threshold = 7\n[tracking]\nmodel_name = "good-wine"\n')
    done = run_cli("run", "--home", str(home), "--config", str(config), "--quiet")
    assert done.returncode == 0, done.stderr
    predictor = predictor_of(home, "good-wine@champion")
    assert predictor.classes == ("0", "1")
    red = wine_frame("red").sample(600, random_state=9)
    truth = (red["quality"] >= 7).astype(float).to_numpy()
    store = prediction_store(home)
    log_traffic(store, predictor, red.head(300), truth[:300])
    code, result = _monitor(home, "--no-track", "--config", str(config), "--window", "300")
    quality = result["versions"][0]["quality"]
    assert code == 0 and quality["metric"] == "ks" and quality["degraded"] is False
    assert quality["metrics"]["roc_auc"] > 0.75 and quality["labelled"] == 300
    assert result["versions"][0]["prediction_drift"]["kind"] == "categorical"
    log_traffic(store, predictor, red.tail(300), 1 - truth[300:])  # the labels flipped
    code, result = _monitor(home, "--no-track", "--config", str(config), "--window", "300")
    assert code == 1 and result["versions"][0]["quality"]["degraded"] is True
    frame = store.read_frame()
    assert {"proba_0", "proba_1"} <= set(frame.columns)
    np.testing.assert_allclose(frame["proba_0"] + frame["proba_1"], 1.0)


def test_monitoring_reads_the_postgresqlprediction_store(trained_home: Path, postgres_url: str) -> None:
    import sqlalchemy as sa

    admin = sa.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text("DROP DATABASE IF EXISTS monitor_test"))
        conn.execute(sa.text("CREATE DATABASE monitor_test"))
    admin.dispose()
    url = postgres_url.rsplit("/", 1)[0] + "/monitor_test"
    from mlrig.predictions.store import PredictionStore

    store = PredictionStore(url)
    store.create_schema()
    white = wine_frame("white").sample(500, random_state=10)
    log_traffic(store, predictor_of(trained_home), white, white["quality"].to_numpy())
    store.close()
    code, result = _monitor(trained_home, "--no-track", env={"MLRIG_PREDICTIONS_URL": url})
    version = result["versions"][0]
    assert code == 1 and result["verdict"] in ("drift", "drift_and_degraded")
    assert version["rows"] == 500 and version["quality"]["labelled"] == 500


def test_mlrig_run_logs_the_reference_profile_with_the_model(trained_home: Path) -> None:
    from mlrig.config import load_settings
    from mlrig.monitoring.profile import FILES, ReferenceProfile
    from mlrig.tracking.monitoring import load_run_files
    from mlrig.tracking.store import open_client

    client = open_client(load_settings(None, {"home": trained_home}))
    run_id = client.get_model_version(MODEL, "1").run_id
    files = load_run_files(client, run_id, FILES)
    assert files is not None
    profile = ReferenceProfile.from_files(files)
    assert profile.task == "regression" and len(profile.features) == 11
    assert profile.training_rows == 1114 and len(profile.predictions) == 400
    assert profile.stats["alcohol"]["min"] <= profile.stats["alcohol"]["mean"] <= profile.stats["alcohol"]["max"]


def test_a_version_without_a_reference_profile_gets_one_built_once(tmp_path: Path) -> None:
    import shutil
    from urllib.parse import urlparse

    from mlrig.config import load_settings
    from mlrig.monitoring.references import load_reference
    from mlrig.tracking.monitoring import version_record
    from mlrig.tracking.store import open_client

    home = tmp_path / ".mlrig"  # its own store: the session's trained home is shared
    assert run_cli("run", "--home", str(home), "--quiet").returncode == 0
    client = open_client(load_settings(None, {"home": home}))
    run_id = client.get_model_version(MODEL, "1").run_id
    # as if the version had been registered before profiles existed
    shutil.rmtree(Path(urlparse(client.get_run(run_id).info.artifact_uri).path) / "monitoring")
    assert not [f.path for f in client.list_artifacts(run_id, "monitoring")]
    profile = load_reference(client, version_record(client, MODEL, "1"))
    assert profile.training_rows == len(profile.sample) == 1114  # every training row
    assert len(profile.predictions) == 400  # its frozen evaluation set
    files = {f.path for f in client.list_artifacts(run_id, "monitoring")}
    assert {"monitoring/profile.json", "monitoring/reference.parquet"} <= files
    again = load_reference(client, version_record(client, MODEL, "1"))  # read back, not rebuilt
    pd.testing.assert_frame_equal(again.sample, profile.sample)
