"""The examples/ folder as a user runs it: the notebook (Python API) and the MLproject."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import BIN

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.mark.slow
def test_quickstart_notebook_runs_top_to_bottom(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import nbformat
    from nbclient import NotebookClient

    monkeypatch.setenv("MLRIG_HOME", str(home))  # the kernel inherits it
    nb = nbformat.read(EXAMPLES / "quickstart.ipynb", as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []  # the stored outputs must not be what we check
    NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(EXAMPLES)}}
    ).execute()
    text = "\n".join(
        o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs
    )
    assert "regression {'rmse'" in text
    assert "'searched': 'elasticnet,ridge'" in text and "promoted:" in text
    assert "ks → champion" in text  # the classification example's first run
    assert (home / "mlflow.db").exists() and (home / "optuna.db").exists()


@pytest.mark.slow
def test_mlproject_entry_points_run_mlrig_inside_the_mlflow_run(home: Path) -> None:
    from mlflow import MlflowClient

    uri = f"sqlite:///{home / 'mlflow.db'}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLRIG_", "MLFLOW_"))}
    env.update(
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
        MLRIG_HOME=str(home),
        MLFLOW_TRACKING_URI=uri,
    )

    def mlflow_run(*args: str) -> None:
        done = subprocess.run(
            [str(BIN / "mlflow"), "run", str(EXAMPLES), *args, "--env-manager", "local"],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr

    mlflow_run("-P", "alpha=0.42")
    client = MlflowClient(uri, uri)
    version = client.get_model_version_by_alias("wine-quality", "champion")
    run = client.get_run(version.run_id)
    assert run.data.params["alpha"] == "0.42" and run.data.params["l1_ratio"] == "0.5"
    assert run.data.tags["mlflow.project.entryPoint"] == "main"  # the run `mlflow run` opened
    assert run.info.status == "FINISHED"

    mlflow_run("-e", "auto_train", "-P", "trials=4")
    tuned = client.search_runs(
        [run.info.experiment_id], "tags.`mlflow.project.entryPoint` = 'auto_train'"
    )
    assert len(tuned) == 1 and tuned[0].data.params["study_trials"] == "4"
    children = client.search_runs(
        [run.info.experiment_id], f"tags.mlflow.parentRunId = '{tuned[0].info.run_id}'"
    )
    assert len(children) == 4  # the trials nest under the run `mlflow run` opened
