"""`mlrig run` as a user runs it: a subprocess on the embedded data, then the store read back."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import WINE_ROW, run_cli

FEATURES = list(WINE_ROW)


def _run_json(home: Path, *args: str) -> dict:  # type: ignore[type-arg]
    done = run_cli("run", "--home", str(home), "--json", *args)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_run_trains_tracks_registers_and_promotes_on_embedded_data(
    home: Path, mlflow_client
) -> None:  # type: ignore[no-untyped-def]
    import mlflow.pyfunc

    result = _run_json(home)
    assert result["mode"] == "local"
    # 400 evaluation rows; training gets every other row except copies of evaluation rows
    assert result["rows"] == 1599 and result["test_rows"] == 400
    assert 1100 < result["train_rows"] < 1199
    assert result["features"] == FEATURES
    assert result["promoted"] is True and result["version"] == "1"

    run = mlflow_client.get_run(result["run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.params["alpha"] == "0.5" and run.data.params["l1_ratio"] == "0.5"
    assert run.data.metrics["rmse"] == pytest.approx(result["metrics"]["rmse"])
    assert {"rmse", "mae", "r2"} <= set(run.data.metrics)
    assert run.data.tags["mlrig.data_digest"] == result["data_digest"]
    assert run.data.tags["mlrig.version"]
    contexts = sorted(
        next(t.value for t in d.tags if t.key == "mlflow.data.context")
        for d in run.inputs.dataset_inputs
    )
    assert contexts == ["evaluation", "training"]
    assert all(d.dataset.source and d.dataset.digest for d in run.inputs.dataset_inputs)

    mv = mlflow_client.get_model_version_by_alias("wine-quality", "champion")
    assert str(mv.version) == "1" and mv.run_id == result["run_id"]
    uri = f"sqlite:///{home.resolve() / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    model = mlflow.pyfunc.load_model("models:/wine-quality@champion")
    assert model.metadata.get_input_schema().input_names() == FEATURES
    import pandas as pd

    rows = pd.DataFrame(
        [[7.4, 0.7, 0.0, 1.9, 0.076, 11.0, 34.0, 0.9978, 3.51, 0.56, 9.4]] * 3, columns=FEATURES
    )
    preds = np.asarray(model.predict(rows))
    assert preds.shape == (3,) and 3 < preds[0] < 8


def test_worse_second_run_does_not_take_champion(home: Path, mlflow_client) -> None:  # type: ignore[no-untyped-def]
    first = _run_json(home)
    second = _run_json(home, "--alpha", "0.9", "--l1-ratio", "0.9")
    assert second["metrics"]["rmse"] > first["metrics"]["rmse"]
    assert second["promoted"] is False
    assert second["decision"]["champion"] == pytest.approx(first["metrics"]["rmse"])
    assert str(mlflow_client.get_model_version_by_alias("wine-quality", "champion").version) == "1"
    challenger = mlflow_client.get_model_version_by_alias("wine-quality", "challenger")
    assert str(challenger.version) == "2"
    assert challenger.tags["mlrig.gate.promote"] == "false"
    assert "vs champion" in challenger.tags["mlrig.gate.reason"]
    better = _run_json(home, "--alpha", "0.01", "--l1-ratio", "0.1")
    assert better["promoted"] is True
    assert str(mlflow_client.get_model_version_by_alias("wine-quality", "champion").version) == "3"


def test_config_file_sets_keys_and_flags_override_it(
    tmp_path: Path, home: Path, wine_csv: Path, mlflow_client
) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "mlrig.toml").write_text(
        f'[data]\nsource = "{wine_csv}"\nseparator = ";"\ntarget = "quality"\n'
        "[train]\nalpha = 0.1\nl1_ratio = 0.2\n"
        '[tracking]\nexperiment = "wine_quality_experiment1"\nmodel_name = "wine-from-file"\n'
    )
    done = run_cli("run", "--home", str(home), "--json", "--alpha", "0.3", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["experiment"] == "wine_quality_experiment1"
    assert result["model_name"] == "wine-from-file"
    assert result["data_source"] == str(wine_csv)
    run = mlflow_client.get_run(result["run_id"])
    assert run.data.params["alpha"] == "0.3" and run.data.params["l1_ratio"] == "0.2"


def test_human_summary_and_models_list(home: Path) -> None:
    done = run_cli("run", "--home", str(home))
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "1599 rows, regression" in out and "rmse" in out and "mae" in out and "r2" in out
    assert "wine-quality version 1" in out and "promoted to champion" in out
    assert "mlrig models show wine-quality" in out and "mlrig ui" in out
    assert "local mode" in done.stderr or "local mode" in out
    listed = run_cli("models", "list", "--home", str(home), "--json")
    assert listed.returncode == 0, listed.stderr
    versions = json.loads(listed.stdout)
    assert [(v["name"], v["version"], v["aliases"]) for v in versions] == [
        ("wine-quality", "1", ["champion"])
    ]
    assert versions[0]["metrics"]["rmse"] > 0
    quiet = run_cli("run", "--home", str(home), "--quiet")
    assert quiet.returncode == 0 and quiet.stderr.strip() == ""
    assert "v2" in quiet.stdout and "champion=no" in quiet.stdout


def test_python_api_keeps_two_homes_apart_in_one_process(tmp_path: Path) -> None:
    """MLflow exports the tracking URI it is given to the environment; a second home in the
    same process must still get its own store."""
    import os

    from mlflow import MlflowClient

    import mlrig

    first = mlrig.run(home=tmp_path / "a")
    second = mlrig.run(home=tmp_path / "b")
    assert "MLFLOW_TRACKING_URI" not in os.environ
    assert first.version == "1" and second.version == "1"  # each home has its own registry
    for home, result in ((tmp_path / "a", first), (tmp_path / "b", second)):
        uri = f"sqlite:///{home.resolve() / 'mlflow.db'}"
        assert MlflowClient(uri).get_run(result.run_id).info.status == "FINISHED"
        assert result.tracking_uri == uri
