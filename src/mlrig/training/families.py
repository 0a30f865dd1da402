"""The model families mlrig can train: how to build each, its defaults and its search space.

Search spaces are plain data (``Float``/``Int``/``Choice``) so this module needs neither
Optuna nor MLflow; tuning.py turns them into Optuna suggestions.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mlrig.data.schema import Task
from mlrig.errors import ConfigError

Params = dict[str, Any]


@dataclass(frozen=True)
class Float:
    low: float
    high: float
    log: bool = False


@dataclass(frozen=True)
class Int:
    low: int
    high: int
    log: bool = False


@dataclass(frozen=True)
class Choice:
    options: tuple[Any, ...]


Space = dict[str, Float | Int | Choice]


@dataclass(frozen=True)
class Family:
    """One scikit-learn estimator family. ``linear`` families get standardised numeric inputs;
    ``stages`` names the parameter that warm-starting grows, so a trial can be pruned between
    stages."""

    name: str
    tasks: frozenset[str]
    linear: bool
    defaults: Params
    space: Space
    make: Callable[[Task, Params, int], Any]
    stages: str | None = None
    dense: bool = False


def _elasticnet(task: Task, p: Params, seed: int) -> Any:
    from sklearn.linear_model import ElasticNet

    return ElasticNet(random_state=seed, max_iter=5000, **p)


def _ridge(task: Task, p: Params, seed: int) -> Any:
    from sklearn.linear_model import Ridge

    return Ridge(random_state=seed, **p)


def _logistic(task: Task, p: Params, seed: int) -> Any:
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(random_state=seed, max_iter=2000, **p)


def _random_forest(task: Task, p: Params, seed: int) -> Any:
    from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor

    cls = RandomForestClassifier if task == "classification" else RandomForestRegressor
    return cls(random_state=seed, n_jobs=1, **p)


def _hist_gradient_boosting(task: Task, p: Params, seed: int) -> Any:
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    cls = (
        HistGradientBoostingClassifier
        if task == "classification"
        else HistGradientBoostingRegressor
    )
    return cls(random_state=seed, early_stopping=False, **p)


_BOTH = frozenset({"regression", "classification"})

FAMILIES: dict[str, Family] = {
    f.name: f
    for f in (
        Family(
            "elasticnet",
            frozenset({"regression"}),
            linear=True,
            defaults={"alpha": 0.5, "l1_ratio": 0.5},
            space={"alpha": Float(1e-4, 10.0, log=True), "l1_ratio": Float(0.0, 1.0)},
            make=_elasticnet,
        ),
        Family(
            "ridge",
            frozenset({"regression"}),
            linear=True,
            defaults={"alpha": 1.0},
            space={"alpha": Float(1e-3, 1e3, log=True)},
            make=_ridge,
        ),
        Family(
            "logistic",
            frozenset({"classification"}),
            linear=True,
            defaults={"C": 1.0},
            space={"C": Float(1e-3, 1e2, log=True)},
            make=_logistic,
        ),
        Family(
            "random_forest",
            _BOTH,
            linear=False,
            defaults={
                "n_estimators": 200,
                "max_depth": None,
                "min_samples_leaf": 1,
                "max_features": 1.0,
            },
            space={
                "n_estimators": Int(50, 400, log=True),
                "max_depth": Int(2, 24, log=True),
                "min_samples_leaf": Int(1, 20, log=True),
                "max_features": Choice(("sqrt", 0.5, 1.0)),
            },
            make=_random_forest,
            stages="n_estimators",
        ),
        Family(
            "hist_gradient_boosting",
            _BOTH,
            linear=False,
            defaults={
                "learning_rate": 0.1,
                "max_iter": 100,
                "max_leaf_nodes": 31,
                "min_samples_leaf": 20,
                "l2_regularization": 0.0,
            },
            space={
                "learning_rate": Float(0.01, 0.3, log=True),
                "max_iter": Int(50, 400, log=True),
                "max_leaf_nodes": Int(8, 128, log=True),
                "min_samples_leaf": Int(5, 100, log=True),
                "l2_regularization": Float(1e-8, 10.0, log=True),
            },
            make=_hist_gradient_boosting,
            stages="max_iter",
            dense=True,
        ),
    )
}


def family(name: str, task: Task, field: str = "train.model") -> Family:
    """The family called ``name``, checked against ``task``; ConfigError names ``field``."""
    found = FAMILIES.get(name)
    if found is None:
        raise ConfigError(
            f"{field} = {name!r}: unknown model family (expected one of {', '.join(FAMILIES)})"
        )
    if task not in found.tasks:
        fits = [f.name for f in FAMILIES.values() if task in f.tasks]
        raise ConfigError(
            f"{field} = {name!r} cannot do {task} (for {task} use one of {', '.join(fits)})"
        )
    return found


def default_family(task: Task) -> str:
    return "elasticnet" if task == "regression" else "logistic"


def resolve_params(fam: Family, given: Params, field: str = "train.params") -> Params:
    """The family's defaults overlaid with ``given``; unknown names are a ConfigError."""
    unknown = [k for k in given if k not in fam.defaults]
    if unknown:
        raise ConfigError(
            f"{field}: {', '.join(map(repr, unknown))} not a parameter of {fam.name} "
            f"(expected {', '.join(fam.defaults)})"
        )
    return {**fam.defaults, **given}
