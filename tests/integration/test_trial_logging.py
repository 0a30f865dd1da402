"""The bulk trial writer produces the same runs as MLflow's own client calls."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from mlrig.tracking.trials import TrialLogger, TrialRecord, _client_writer, _sql_writer


def _records() -> list[TrialRecord]:
    return [
        TrialRecord(0, "COMPLETE", {"model": "ridge", "alpha": 0.5}, {"validation_rmse": 0.61}, 1_700_000_000_000, 1_700_000_000_250),
        TrialRecord(1, "PRUNED", {"model": "hist_gradient_boosting", "max_iter": 80}, {"validation_rmse": 0.9}, 1_700_000_001_000, 1_700_000_001_100),
        TrialRecord(2, "FAIL", {"model": "ridge", "alpha": 3.0}, {"validation_rmse": math.nan}, 1_700_000_002_000, 1_700_000_002_010),
    ]  # fmt: skip


def _summary(client, experiment_id: str, parent: str) -> list[tuple]:  # type: ignore[no-untyped-def,type-arg]
    runs = client.search_runs([experiment_id], f"tags.mlflow.parentRunId = '{parent}'")
    out = []
    for r in sorted(runs, key=lambda r: int(r.data.tags["mlrig.trial"])):
        tags = {k: v for k, v in r.data.tags.items() if k != PARENT}
        out.append(
            (r.info.run_name, r.info.status, r.info.start_time, r.info.end_time,
             r.info.lifecycle_stage, r.data.params, r.data.metrics, tags)
        )  # fmt: skip
    return out


PARENT = "mlflow.parentRunId"


def test_bulk_writer_matches_the_client_api(tmp_path: Path) -> None:
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    experiment_id = client.create_experiment("t", artifact_location=(tmp_path / "a").as_uri())
    parents = [client.create_run(experiment_id).info.run_id for _ in range(2)]
    bulk = _sql_writer(client, experiment_id, parents[0])
    assert bulk is not None
    bulk(_records())
    _client_writer(client, experiment_id, parents[1])(_records())
    via_bulk = _summary(client, experiment_id, parents[0])
    via_client = _summary(client, experiment_id, parents[1])
    assert via_bulk == via_client
    assert [s[1] for s in via_bulk] == ["FINISHED", "KILLED", "FAILED"]
    assert via_bulk[0][6] == {"validation_rmse": pytest.approx(0.61)} and via_bulk[2][6] == {}
    child = client.search_runs([experiment_id], f"tags.mlflow.parentRunId = '{parents[0]}'")[0]
    assert child.info.artifact_uri.startswith((tmp_path / "a").as_uri())


def test_logger_writes_everything_submitted_before_close(tmp_path: Path) -> None:
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    experiment_id = client.create_experiment("t")
    parent = client.create_run(experiment_id).info.run_id
    logger = TrialLogger(client, experiment_id, parent)
    for i in range(500):
        logger.submit(TrialRecord(i, "COMPLETE", {"alpha": i}, {"validation_rmse": i / 10}, 1, 2))
    logger.close()
    runs = client.search_runs(
        [experiment_id], f"tags.mlflow.parentRunId = '{parent}'", max_results=1000
    )
    assert sorted(int(r.data.params["alpha"]) for r in runs) == list(range(500))
