"""Evaluation figures of a fitted Pipeline on the evaluation rows (PNG bytes by file name)."""

from __future__ import annotations

from typing import Any

from mlrig.training.train import importances


def evaluation_plots(model: Any, x: Any, y: Any, task: str) -> dict[str, bytes]:
    from mlrig.training import plots

    weights = importances(model) or permutation_weights(model, x, y)
    names, values, kind = weights
    if task == "classification":
        return plots.classification_plots(
            y, model.predict_proba(x), model.classes_, names, values, importance_kind=kind
        )
    return plots.regression_plots(y, model.predict(x), names, values, importance_kind=kind)


def permutation_weights(model: Any, x: Any, y: Any) -> tuple[list[str], Any, str]:
    """For models without coefficients or impurity importances (histogram boosting): how much
    the score drops when one input column is shuffled, on the evaluation rows."""
    from sklearn.inspection import permutation_importance

    found = permutation_importance(model, x, y, n_repeats=3, random_state=0, n_jobs=1)
    return [str(c) for c in x.columns], found.importances_mean, "permutation importance"
