"""`mlrig retrain` and `mlrig loop` on a real MLflow store and a real prediction log: the
policy's decisions from real monitoring, the fair gate on the recent production slice in both
directions, what a retrain records about its rows, and the pass history."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import log_traffic, prediction_store, predictor_of, run_cli, wine_frame

pytestmark = pytest.mark.slow
MODEL = "wine-quality"


def _json(*args: str, env: dict[str, str] | None = None) -> dict:  # type: ignore[type-arg]
    done = run_cli(*args, "--json", env=env)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _white_traffic(home: Path, n: int = 900, seed: int = 1) -> None:
    white = wine_frame("white").sample(n, random_state=seed)
    store = prediction_store(home)
    log_traffic(store, predictor_of(home), white, white["quality"].to_numpy())
    store.close()


def test_calm_traffic_no_retrain_then_white_wine_retrains_and_the_recent_slice_promotes(
    trained_home: Path,
) -> None:
    from mlflow import MlflowClient

    home = str(trained_home)
    red = wine_frame("red").sample(400, random_state=2)
    store = prediction_store(trained_home)
    log_traffic(store, predictor_of(trained_home), red, red["quality"].to_numpy())
    store.close()
    calm = _json("loop", "--home", home)
    assert calm["outcome"] == "no_retrain" and calm["verdict"] == "ok", calm
    assert "no trigger" in calm["reason"] and calm["version"] is None

    _white_traffic(trained_home)
    drifted = _json("loop", "--home", home)
    assert drifted["retrain"] and set(drifted["triggers"]) >= {"drift", "degraded"}, drifted
    gate = drifted["gate"]
    assert gate["governed_by"] == "recent", gate
    recent = next(s for s in gate["sets"] if s["name"] == "recent")
    assert recent["challenger"] < recent["champion"]  # decided by the data: rmse on white wine
    assert drifted["outcome"] == "promoted" and drifted["promoted"]
    prod = drifted["production"]
    # 400 red + 900 white labelled rows; the newest 30% held out, never trained on
    assert prod["train_rows"] + prod["recent_rows"] <= 1300 and prod["recent_rows"] == 390
    steps = [s["step"] for s in drifted["steps"]]
    assert steps[:2] == ["monitor", "policy"]
    assert "retrain: production rows" in steps and "gate" in steps and "promote" in steps

    # the run's records say which rows it used
    uri = f"sqlite:///{trained_home.resolve() / 'mlflow.db'}"
    client = MlflowClient(uri, uri)
    mv = client.get_model_version(MODEL, drifted["version"])
    run = client.get_run(mv.run_id)
    assert run.data.params["production_recent_rows"] == "390"
    path = client.download_artifacts(mv.run_id, "retrain/rows.json", str(trained_home))
    rows = json.loads(Path(path).read_text())
    assert len(rows["recent_ids"]) == 390 and not set(rows["recent_ids"]) & set(rows["train_ids"])
    assert "recent_rmse" in run.data.metrics and "champion_rmse_recent_slice" in run.data.metrics

    # models show names both scores and the rule; the loop pass is an MLflow run
    shown = run_cli("models", "show", MODEL, "--home", home)
    assert "recent" in shown.stdout and "frozen" in shown.stdout and "gate = auto" in shown.stdout
    loop_runs = client.search_runs(
        [client.get_experiment_by_name(f"{MODEL}-loop").experiment_id]
    )
    assert {r.data.tags["mlrig.loop.outcome"] for r in loop_runs} == {"no_retrain", "promoted"}

    # the cool-down keeps the next pass from retraining again on the same drift
    again = _json("loop", "--home", home)
    assert again["triggers"] and not again["retrain"] and "cool-down until" in again["reason"]
    assert again["outcome"] == "no_retrain"


def test_a_worse_challenger_is_kept_out_by_the_recent_slice(trained_home: Path) -> None:
    _white_traffic(trained_home, 700, seed=3)
    # a heavily regularised ElasticNet predicts nearly the mean: worse on the recent rows
    worse = _json("retrain", "--home", str(trained_home), env={"MLRIG_TRAIN__ALPHA": "50"})
    d = worse["decision"]
    assert d["governed_by"] == "recent" and not worse["promoted"], d
    recent = next(s for s in d["sets"] if s["name"] == "recent")
    assert recent["challenger"] > recent["champion"]
    assert worse["champion_version"] == "1" and worse["version"] == "2"


def test_the_frozen_set_governs_when_the_recent_slice_is_small(trained_home: Path) -> None:
    _white_traffic(trained_home, 100, seed=4)  # 30 recent rows < recent_min_rows (100)
    done = _json("retrain", "--home", str(trained_home))
    d = done["decision"]
    assert d["governed_by"] == "frozen" and "(< 100)" in d["rule"]
    assert [s["name"] for s in d["sets"]] == ["frozen", "recent"]
    assert done["production"]["recent_rows"] == 30


def test_retrain_without_feedback_trains_on_the_source_alone(trained_home: Path) -> None:
    done = _json("retrain", "--home", str(trained_home))
    assert done["production"]["train_rows"] == 0 and done["production"]["recent_rows"] == 0
    assert done["decision"]["governed_by"] == "frozen"


def test_a_classifier_retrains_on_feedback_labels_not_rethresholded(home: Path) -> None:
    """Feedback of a thresholded classifier is the label (0/1): it joins the source's labels
    as is, and the gate weighs KS on both sets."""
    config = Path(__file__).resolve().parents[2] / "examples" / "wine-classification.toml"
    common = ("--home", str(home), "--config", str(config))
    first = run_cli("run", *common, "--quiet", env={"MLRIG_TRAIN__MODEL": "logistic"})
    assert first.returncode == 0, first.stderr
    white = wine_frame("white").sample(600, random_state=6)
    labels = (white["quality"] >= 7).astype(int).to_numpy()
    store = prediction_store(home)
    log_traffic(store, predictor_of(home, "wine-good@champion"), white, labels)
    store.close()
    done = _json("retrain", *common, env={"MLRIG_TRAIN__MODEL": "logistic"})
    d = done["decision"]
    assert d["metric"] == "ks" and [s["name"] for s in d["sets"]] == ["frozen", "recent"]
    # 600 rows: the newest 180 held out; older copies of them (white wine repeats) dropped
    assert done["production"]["recent_rows"] == 180
    assert 400 <= done["production"]["train_rows"] <= 420
    assert done["task"] == "classification" and done["decision"]["governed_by"] == "recent"
    from mlflow import MlflowClient

    uri = f"sqlite:///{home.resolve() / 'mlflow.db'}"
    path = MlflowClient(uri, uri).download_artifacts(
        done["run_id"], "retrain/recent_slice.parquet", str(home)
    )
    recent = pd.read_parquet(path)["quality"]
    assert recent.sum() == labels[-180:].sum() > 0  # the labels themselves, not re-thresholded
