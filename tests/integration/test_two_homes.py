"""Two mlrig homes used alternately in one process: each run, model and evaluation set lands in
its own store, and MLflow's process-wide tracking URI and environment stay as they were."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def _settings(home: Path, data: Path, alpha: float | None = None):  # type: ignore[no-untyped-def]
    from mlrig.config import load_settings

    overrides = {"home": str(home), "data": {"source": str(data)}, "train": {"alpha": alpha}}
    return load_settings(None, overrides)


def _client(home: Path):  # type: ignore[no-untyped-def]
    from mlflow import MlflowClient

    uri = f"sqlite:///{home.resolve() / 'mlflow.db'}"
    return MlflowClient(uri, uri)


def _run_ids(home: Path) -> set[str]:
    client = _client(home)
    experiments = [e.experiment_id for e in client.search_experiments()]
    return {r.info.run_id for r in client.search_runs(experiments)}


@pytest.mark.slow
def test_alternating_homes_keep_runs_models_and_uris_apart(
    tmp_path: Path, wine_csv: Path
) -> None:
    import mlflow

    from mlrig.pipeline.runner import run_training
    from mlrig.tracking.loading import load_model
    from mlrig.tracking.store import open_client

    global_uri = mlflow.get_tracking_uri()
    a = _settings(tmp_path / "a" / ".mlrig", wine_csv)
    b = _settings(tmp_path / "b" / ".mlrig", wine_csv)

    open_client(a)
    open_client(b)  # the client opened last must not decide where A's run goes
    first_a = run_training(a)
    open_client(a)
    first_b = run_training(b)
    second_a = run_training(_settings(a.home_dir, wine_csv, alpha=0.1))

    assert "MLFLOW_TRACKING_URI" not in os.environ and "MLFLOW_REGISTRY_URI" not in os.environ
    assert mlflow.get_tracking_uri() == global_uri
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "mlruns").exists()

    assert _run_ids(a.home_dir) == {first_a.run_id, second_a.run_id}
    assert _run_ids(b.home_dir) == {first_b.run_id}
    assert (first_a.version, second_a.version, first_b.version) == ("1", "2", "1")
    # A's second run reused A's evaluation set and was gated against A's champion
    assert first_a.run_id in second_a.eval_set
    assert second_a.decision["champion"] is not None and first_b.decision["champion"] is None

    for settings, result in ((a, second_a), (b, first_b)):
        client = _client(settings.home_dir)
        version = client.get_model_version(result.model_name, result.version)
        assert version.run_id == result.run_id
        logged = client.get_logged_model(version.source.removeprefix("models:/"))
        assert logged.source_run_id == result.run_id
        assert logged.artifact_location.startswith(settings.artifact_root.as_uri())
        run = client.get_run(result.run_id)
        assert run.outputs.model_outputs[0].model_id == logged.model_id
        assert {i.dataset.name.rsplit(":", 1)[-1] for i in run.inputs.dataset_inputs} == {
            "training",
            "evaluation",
        }
        loaded = load_model(open_client(settings), f"{result.model_name}/{result.version}")
        assert loaded.run_id == result.run_id and loaded.features

    assert "MLFLOW_TRACKING_URI" not in os.environ
    assert mlflow.get_tracking_uri() == global_uri
