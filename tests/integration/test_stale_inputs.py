"""Nothing silently stale: a study resumed for another gate metric, an evaluation set labelled
another way, a gate whose champion moved while it scored. Real stores: Optuna's SQLite
storage, the MLflow store of an mlrig home, the prediction store's leases."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mlrig.config import Settings, load_settings


def _settings(home: Path, **data: Any) -> Settings:
    return load_settings(None, {"home": str(home), "data": data} if data else {"home": str(home)})


def test_a_study_is_not_resumed_for_another_metric_or_direction(home: Path) -> None:
    import optuna

    from mlrig.errors import TuningError
    from mlrig.pipeline.tuning import STUDY_METRIC, open_study

    settings = _settings(home)
    study = open_study(settings, "s", "rmse", 0)
    study.optimize(lambda t: t.suggest_float("a", 0, 1), n_trials=2)
    assert open_study(settings, "s", "rmse", 0).user_attrs[STUDY_METRIC] == "rmse"  # resumes
    with pytest.raises(TuningError, match=r"scores rmse \(minimize\).*gate metric is mae"):
        open_study(settings, "s", "mae", 0)  # same direction, other metric
    with pytest.raises(TuningError, match=r"gate metric is r2 \(maximize\)"):
        open_study(settings, "s", "r2", 0)
    # a study made outside mlrig (no recorded metric) with trials is not trusted either
    outside = optuna.create_study(study_name="o", storage=settings.tune_storage)
    outside.optimize(lambda t: t.suggest_float("a", 0, 1), n_trials=1)
    with pytest.raises(TuningError, match="no recorded metric"):
        open_study(settings, "o", "rmse", 0)
    assert len(optuna.load_study(study_name="s", storage=settings.tune_storage).trials) == 2


@pytest.mark.slow
def test_a_new_positive_threshold_redraws_the_evaluation_set(home: Path) -> None:
    """The frozen set stores labels; with another threshold they are stale. The second run
    draws (and stores) a new set and says why, and no evaluation row's features train."""
    from mlrig.pipeline.runner import run_training
    from mlrig.pipeline.steps import load_step, prepare_step, validate_step

    first = run_training(_settings(home, task="classification", positive_threshold=6))
    assert first.eval_set.startswith("new evaluation set")
    settings = _settings(home, task="classification", positive_threshold=7)
    second = run_training(settings)
    assert "the stored one is stale" in second.eval_set
    assert '"positive_threshold": 6.0' in second.eval_set
    third = run_training(settings)  # the new set, labelled at 7, is reused from now on
    assert third.eval_set.startswith(f"frozen evaluation set of run {second.run_id}")
    data = validate_step(load_step(settings), settings)
    prepared = prepare_step(data, settings)
    features = list(data.schema.features)
    train = set(map(tuple, prepared.x_train[features].to_numpy().tolist()))
    evaluation = set(map(tuple, prepared.x_eval[features].to_numpy().tolist()))
    assert train and evaluation and not train & evaluation
    # a crash between the model's three eval-set tag writes (digest, labelling, run id) of a
    # later set: the run id still names the old set, whose own run tags stay authoritative
    from mlrig.tracking.store import open_client
    from mlrig.tracking.tags import EVAL_SET_DIGEST, EVAL_SET_LABELLING

    client = open_client(settings)
    client.set_registered_model_tag("wine-quality", EVAL_SET_DIGEST, "half-written")
    client.set_registered_model_tag("wine-quality", EVAL_SET_LABELLING, "half-written")
    again = prepare_step(data, settings)
    assert again.eval_note.startswith(f"frozen evaluation set of run {second.run_id}")
    assert again.eval_digest == prepared.eval_digest != "half-written"


def test_a_gate_whose_champion_moved_while_it_scored_does_not_promote(home: Path) -> None:
    """The run scored "no champion"; meanwhile version 1 became champion by hand. The gate's
    promotion is refused, and the run and the version say why."""
    from mlflow import MlflowClient

    from mlrig.pipeline.publish import promote_step
    from mlrig.pipeline.results import ChampionScore, Registered
    from mlrig.tracking.registry import CHAMPION, alias_version, move_champion
    from mlrig.tracking.tags import GATE_PROMOTE, GATE_REASON, RECORD
    from mlrig.training.evaluate import GateDecision

    settings = _settings(home)
    home.mkdir(parents=True)
    client = MlflowClient(settings.tracking_uri, settings.tracking_uri)
    exp = client.create_experiment("mlrig")
    client.create_registered_model("wine-quality")
    runs = [client.create_run(exp) for _ in range(2)]
    for run in runs:
        client.create_model_version(
            "wine-quality",
            f"{run.info.artifact_uri}/model",
            run.info.run_id,
            tags={RECORD: "complete"},
        )
    move_champion(client, "wine-quality", "1", "promote", "someone", "by hand")
    decision = GateDecision(True, "rmse", 0.5, None, 0.0, "no champion yet")
    applied = promote_step(
        settings,
        Registered(runs[1].info.run_id, "mlrig", "2"),
        decision,
        ChampionScore(None, None, "no champion yet"),
    )
    assert not applied.promote
    assert "champion moved from no champion to version 1" in applied.reason
    assert alias_version(client, "wine-quality", CHAMPION) == "1"
    tags = client.get_model_version("wine-quality", "2").tags
    assert tags[GATE_PROMOTE] == "false" and tags[GATE_REASON] == applied.reason
    run = client.get_run(runs[1].info.run_id)
    assert run.info.status == "FINISHED" and run.data.tags[GATE_PROMOTE] == "false"
