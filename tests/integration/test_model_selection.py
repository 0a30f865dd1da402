"""Model families, classification, categoricals and the champion gate through `mlrig run`."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pandas as pd
import pytest

from tests.conftest import Server, run_cli, write_taxi_config, write_taxi_parquet

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _run(home: Path, *args: str, cwd: Path | None = None) -> dict:  # type: ignore[type-arg]
    done = run_cli("run", "--home", str(home), "--json", *args, cwd=cwd)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _artifacts(client, run_id: str, path: str) -> set[str]:  # type: ignore[no-untyped-def]
    return {a.path for a in client.list_artifacts(run_id, path)}


def test_wine_classification_example_picks_its_champion_by_ks(home: Path, mlflow_client) -> None:  # type: ignore[no-untyped-def]
    config = str(EXAMPLES / "wine-classification.toml")
    first = _run(home, "--config", config)
    assert first["task"] == "classification" and first["model_name"] == "wine-good"
    assert set(first["metrics"]) == {"roc_auc", "ks", "log_loss", "accuracy", "f1"}
    assert first["decision"]["metric"] == "ks" and first["promoted"] is True
    assert first["params"]["model"] == "hist_gradient_boosting"
    plots = _artifacts(mlflow_client, first["run_id"], "plots")
    assert {
        "plots/roc_curve.png",
        "plots/ks_curve.png",
        "plots/confusion_matrix.png",
        "plots/feature_importance.png",  # permutation importance: HGB has no coefficients
    } <= plots
    assert _artifacts(mlflow_client, first["run_id"], "evaluation") == {
        "evaluation/eval_set.parquet"
    }

    # another family on the same frozen evaluation set: both KS scores are on identical rows
    second = _run(home, "--config", config, "--model", "logistic")
    assert "frozen evaluation set of run " + first["run_id"] in second["eval_set"]
    assert second["test_rows"] == first["test_rows"] and second["train_rows"] == first["train_rows"]
    assert second["decision"]["champion"] == pytest.approx(first["metrics"]["ks"])
    better = second["metrics"]["ks"] > first["metrics"]["ks"]
    assert second["promoted"] is better
    tags = mlflow_client.get_model_version("wine-good", second["version"]).tags
    assert tags["mlrig.gate.metric"] == "ks" and tags["mlrig.task"] == "classification"
    assert float(tags["mlrig.gate.champion"]) == pytest.approx(first["metrics"]["ks"], rel=1e-5)

    shown = run_cli("models", "show", "wine-good", "--home", str(home))
    assert shown.returncode == 0, shown.stderr
    assert "ks" in shown.stdout and "champion history" in shown.stdout


def test_evaluation_rows_are_frozen_and_never_trained_on(
    tmp_path: Path, home: Path, mlflow_client
) -> None:  # type: ignore[no-untyped-def]
    from mlrig.data.ingest import embedded_path

    first = _run(home)
    red = pd.read_csv(embedded_path(), sep=";")
    white = pd.read_csv(embedded_path().with_name("winequality-white.csv"), sep=";")
    both = tmp_path / "both.csv"
    pd.concat([red, white]).to_csv(both, sep=";", index=False)
    second = _run(home, "--data", str(both))
    assert second["rows"] == len(red) + len(white)
    assert second["test_rows"] == first["test_rows"]  # the same 400 evaluation rows
    stored = pd.read_parquet(
        mlflow_client.download_artifacts(first["run_id"], "evaluation/eval_set.parquet")
    )
    in_eval = pd.concat([red, white]).astype("float64").merge(stored.drop_duplicates(), how="inner")
    assert second["train_rows"] == second["rows"] - len(in_eval)  # copies of them excluded too
    assert second["decision"]["champion"] is not None


def test_taxi_parquet_with_categorical_zones_trains_and_serves_raw_records(
    tmp_path: Path, home: Path
) -> None:
    data = write_taxi_parquet(tmp_path / "green_tripdata_2021-01.parquet")
    config = write_taxi_config(tmp_path / "taxi.toml", data)
    onehot = _run(home, "--config", str(config))
    assert onehot["categorical"] == ["PULocationID", "DOLocationID"]
    assert onehot["task"] == "regression" and onehot["metrics"]["r2"] > 0.9
    numeric = tmp_path / "numeric.toml"  # the same data with zones as plain numbers
    numeric.write_text(
        config.read_text()
        .replace("categorical = [", "categorical = [] #")
        .replace('model_name = "taxi-duration"', 'model_name = "taxi-numeric"')
    )
    plain = _run(home, "--config", str(numeric))
    assert plain["categorical"] == []
    assert onehot["metrics"]["rmse"] < plain["metrics"]["rmse"]  # the encoding is what helps

    server = Server(home, env={"MLRIG_SERVING__MODEL": "taxi-duration@champion"})
    try:
        server.wait_ready()
        body = [
            {"id": "t1", "PULocationID": 132, "DOLocationID": 7, "trip_distance": 2.0},
            {"id": "t2", "PULocationID": "132", "DOLocationID": "7", "trip_distance": 2.0},
            {"id": "t3", "PULocationID": 265, "DOLocationID": 7, "trip_distance": 2.0},
        ]
        r = httpx.post(f"{server.url}/predict", json=body)
        assert r.status_code == 200, r.text
        preds = [p["prediction"] for p in r.json()["predictions"]]
        assert preds[0] == pytest.approx(preds[1])  # id as integer or string: same zone
        assert 15 < preds[0] < 20  # 3 + 2.5·2 + 9 (zone 132) + 0 (zone 7)
        assert preds[2] < preds[0]  # unknown zone 265: no zone effect, still answered
        bad = httpx.post(
            f"{server.url}/predict",
            json={"PULocationID": 1.5, "DOLocationID": 7, "trip_distance": 1},
        )
        assert bad.status_code == 422 and bad.json()["field"] == "PULocationID"
        inv = httpx.post(
            f"{server.url}/invocations",
            json={
                "dataframe_split": {
                    "columns": ["PULocationID", "DOLocationID", "trip_distance"],
                    "data": [[132, 7, 2.0]],
                }
            },
        )
        assert inv.status_code == 200 and inv.json()["predictions"][0] == pytest.approx(preds[0])
        assert "PULocationID" in httpx.get(f"{server.url}/openapi.json").text
    finally:
        server.stop()
    out = tmp_path / "log.csv"
    done = run_cli(
        "predictions", "export", "--home", str(home), "--output", str(out), "--format", "csv"
    )
    assert done.returncode == 0, done.stderr
    log = pd.read_csv(out, dtype={"PULocationID": str})
    assert set(log["id"].head(3)) == {"t1", "t2", "t3"}
    assert log.set_index("id").loc["t3", "PULocationID"] == "265"
    assert len(log) == 4  # three /predict rows and one /invocations row; the 422 is not logged


def test_unknown_family_or_wrong_metric_fails_before_anything_is_registered(
    home: Path,
) -> None:
    done = run_cli("run", "--home", str(home), "--model", "xgboost")
    assert done.returncode == 2 and "train.model = 'xgboost': unknown model family" in done.stderr
    done = run_cli(
        "run",
        "--home",
        str(home),
        "--config",
        str(EXAMPLES / "wine-classification.toml"),
        "--model",
        "elasticnet",
    )
    assert done.returncode == 2 and "cannot do classification" in done.stderr
    listed = run_cli("models", "list", "--home", str(home), "--json")
    assert json.loads(listed.stdout) == []


def test_promote_and_rollback_record_who_and_why(home: Path, mlflow_client) -> None:  # type: ignore[no-untyped-def]
    _run(home, "--alpha", "0.9")  # v1 champion
    assert _run(home, "--alpha", "0.05")["promoted"] is True  # v2 better: champion
    env = {"MLRIG_USER": "ana"}
    back = run_cli(
        "models", "rollback", "wine-quality", "--reason", "v2 drifts on white wine",
        "--home", str(home), env=env,
    )  # fmt: skip
    assert back.returncode == 0, back.stderr
    assert "rolled back to version 1 (was 2)" in back.stdout
    assert str(mlflow_client.get_model_version_by_alias("wine-quality", "champion").version) == "1"
    again = run_cli(
        "models", "promote", "wine-quality", "2", "--reason", "fixed upstream",
        "--home", str(home), env=env,
    )  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert str(mlflow_client.get_model_version_by_alias("wine-quality", "champion").version) == "2"
    shown = json.loads(
        run_cli("models", "show", "wine-quality", "--home", str(home), "--json").stdout
    )
    history = [(h["action"], h["version"], h["by"], h["reason"]) for h in shown["history"]]
    assert history[-2:] == [
        ("rollback", "1", "ana", "v2 drifts on white wine"),
        ("promote", "2", "ana", "fixed upstream"),
    ]
    assert history[0][:3] == ("gate", "1", "mlrig")
    v2 = mlflow_client.get_model_version("wine-quality", "2").tags
    assert v2["mlrig.champion.by"] == "ana" and v2["mlrig.champion.action"] == "promote"

    missing = run_cli(
        "models", "promote", "wine-quality", "9", "--reason", "x", "--home", str(home)
    )
    assert missing.returncode == 4 and "no version '9'" in missing.stderr
    no_reason = run_cli("models", "promote", "wine-quality", "1", "--home", str(home))
    assert no_reason.returncode == 2 and "--reason" in no_reason.stderr


def test_multiclass_run_and_classification_tune(tmp_path: Path, home: Path, mlflow_client) -> None:  # type: ignore[no-untyped-def]
    config = tmp_path / "multi.toml"
    config.write_text(
        '[data]\ntask = "classification"\n[train]\nmodel = "logistic"\n'
        '[tracking]\nmodel_name = "wine-grade"\n'
    )
    multi = _run(home, "--config", str(config))
    assert multi["task"] == "classification" and multi["decision"]["metric"] == "ks"
    assert 0.5 < multi["metrics"]["roc_auc"] <= 1 and 0 < multi["metrics"]["ks"] <= 1
    done = run_cli(
        "tune", "--home", str(home), "--json", "--config", str(config),
        "--trials", "6", "--timeout", "120", "-m", "logistic", "-m", "random_forest",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    tuned = json.loads(done.stdout)
    assert tuned["task"] == "classification" and tuned["params"]["study_trials"] == 6
    assert tuned["decision"]["champion"] == pytest.approx(multi["metrics"]["ks"])
    parent = mlflow_client.get_run(tuned["run_id"])
    assert "best_validation_ks" in parent.data.metrics and "log_loss" in parent.data.metrics
