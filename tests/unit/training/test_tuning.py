"""Search spaces become Optuna suggestions, and a finished trial maps back to a ModelSpec."""

from __future__ import annotations

import numpy as np
import optuna
import pandas as pd
import pytest

from mlrig.data.schema import FeatureSchema
from mlrig.training.families import FAMILIES, Choice, Float, Int
from mlrig.training.tuning import Objective, TrialData, direction, spec_from_params, suggest


def test_direction_follows_the_metric() -> None:
    assert direction("rmse") == "minimize" and direction("log_loss") == "minimize"
    assert direction("ks") == "maximize" and direction("r2") == "maximize"


@pytest.mark.parametrize("families", [["elasticnet"], list(FAMILIES)])
def test_suggestions_stay_in_the_space_and_round_trip(families: list[str]) -> None:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(25):
        trial = study.ask()
        spec = suggest(trial, families)
        for key, dist in FAMILIES[spec.family].space.items():
            value = spec.params[key]
            if isinstance(dist, (Float, Int)):
                assert dist.low <= value <= dist.high
            elif isinstance(dist, Choice):
                assert value in dist.options
        study.tell(trial, 1.0)
        back = spec_from_params(trial.params, families, seed=7)
        assert back.family == spec.family and back.params == spec.params and back.seed == 7


def _trial_data(n: int = 300) -> TrialData:
    rng = np.random.default_rng(0)
    x = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n)})
    y = pd.Series(3 * x["a"] - x["b"] + rng.normal(0, 0.1, n))
    schema = FeatureSchema(("a", "b"), "y")
    return TrialData(schema, x[:200], y[:200], x[200:], y[200:])


def test_objective_scores_on_validation_rows_and_prunes_staged_families() -> None:
    data = _trial_data()
    objective = Objective(data, ["hist_gradient_boosting"], "rmse", seed=0)
    study = optuna.create_study(
        direction="minimize",
        sampler=optuna.samplers.RandomSampler(seed=1),
        pruner=optuna.pruners.ThresholdPruner(upper=0.0),  # prune at the first report
    )
    study.optimize(objective, n_trials=3)
    states = {t.state for t in study.trials}
    assert states == {optuna.trial.TrialState.PRUNED}
    assert all(0 in t.intermediate_values for t in study.trials)

    linear = Objective(data, ["ridge"], "rmse", seed=0)
    study = optuna.create_study(direction="minimize", sampler=optuna.samplers.RandomSampler(seed=1))
    study.optimize(linear, n_trials=3)
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    assert 0 < study.best_value < 1.5  # y = 3a - b + noise: a linear model does well


def test_a_one_family_trial_maps_back_to_its_family_whatever_is_searched_now() -> None:
    spec = spec_from_params({"ridge.alpha": 3.0}, ["elasticnet", "ridge"], seed=1)
    assert spec.family == "ridge" and spec.params == {"alpha": 3.0}
