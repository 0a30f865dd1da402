"""The Optuna side of tuning: search spaces as suggestions, and the trial objective.

A trial samples a family (when several are searched) and its hyperparameters, fits on the
fitting rows and scores the gate metric on validation rows carved from the training data;
the frozen evaluation set is never seen here, so the gate stays an honest test. Families that
grow by stages (boosting iterations, trees) report after each stage so a pruner can stop a
poor trial early.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from mlrig.data.schema import FeatureSchema
from mlrig.training.evaluate import LOWER_IS_BETTER
from mlrig.training.families import FAMILIES, Choice, Float, Int, Params
from mlrig.training.train import ModelSpec, build_pipeline, score_model

if TYPE_CHECKING:
    import optuna
    import pandas as pd

FAMILY_PARAM = "model"
_STAGES = (0.25, 0.5, 1.0)


def direction(metric: str) -> Literal["minimize", "maximize"]:
    return "minimize" if metric in LOWER_IS_BETTER else "maximize"


def suggest(trial: optuna.Trial, families: list[str]) -> ModelSpec:
    """Sample one family and its parameters. Optuna names are ``family.param`` so families
    sharing a parameter name keep separate distributions."""
    name = (
        families[0]
        if len(families) == 1
        else str(trial.suggest_categorical(FAMILY_PARAM, families))
    )
    params: Params = {}
    for key, dist in FAMILIES[name].space.items():
        label = f"{name}.{key}"
        if isinstance(dist, Float):
            params[key] = trial.suggest_float(label, dist.low, dist.high, log=dist.log)
        elif isinstance(dist, Int):
            params[key] = trial.suggest_int(label, dist.low, dist.high, log=dist.log)
        elif isinstance(dist, Choice):
            params[key] = trial.suggest_categorical(label, list(dist.options))
    return ModelSpec(name, params)


def spec_from_params(params: dict[str, Any], families: list[str], seed: int) -> ModelSpec:
    """The ModelSpec a finished trial's ``params`` describe."""
    name = params.get(FAMILY_PARAM)
    if name is None:  # a one-family trial: its parameter names carry the family
        prefixes = {k.split(".", 1)[0] for k in params if "." in k}
        name = prefixes.pop() if len(prefixes) == 1 else families[0]
    name = str(name)
    prefix = f"{name}."
    own = {k.removeprefix(prefix): v for k, v in params.items() if k.startswith(prefix)}
    return ModelSpec(name, {**FAMILIES[name].defaults, **own}, seed)


@dataclass(frozen=True)
class TrialData:
    """Fitting and validation rows of every trial."""

    schema: FeatureSchema
    x_fit: pd.DataFrame
    y_fit: pd.Series
    x_val: pd.DataFrame
    y_val: pd.Series


class Objective:
    """Callable for ``study.optimize``: returns the validation score of the gate metric."""

    def __init__(self, data: TrialData, families: list[str], metric: str, seed: int) -> None:
        self.data = data
        self.families = families
        self.metric = metric
        self.seed = seed

    def __call__(self, trial: optuna.Trial) -> float:
        import optuna

        spec = suggest(trial, self.families)
        spec = ModelSpec(spec.family, spec.params, self.seed)
        d = self.data
        fam = FAMILIES[spec.family]
        if fam.stages is None:
            model = build_pipeline(d.schema, spec).fit(d.x_fit, d.y_fit)
            return self._score(model)
        target = int(spec.params[fam.stages])
        model = build_pipeline(d.schema, spec)
        model.set_params(model__warm_start=True)
        value = math.nan
        for step, share in enumerate(_STAGES):
            model.set_params(**{f"model__{fam.stages}": max(1, int(target * share))})
            model.fit(d.x_fit, d.y_fit)
            value = self._score(model)
            if share < 1.0:
                trial.report(value, step)
                if trial.should_prune():
                    raise optuna.TrialPruned()
        return value

    def _score(self, model: Any) -> float:
        d = self.data
        return score_model(model, d.x_val, d.y_val, d.schema.task)[self.metric]
