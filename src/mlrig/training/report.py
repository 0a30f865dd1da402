"""Evaluation figures of a fitted Pipeline on the evaluation rows (PNG bytes by file name)."""

from __future__ import annotations

from typing import Any

from mlrig.training.train import importances


def evaluation_plots(model: Any, x: Any, y: Any, task: str) -> dict[str, bytes]:
    from mlrig.training import plots

    weights = importances(model)
    names, values, kind = weights if weights is not None else ([], None, "importance")
    if task == "classification":
        return plots.classification_plots(
            y, model.predict_proba(x), model.classes_, names, values, importance_kind=kind
        )
    return plots.regression_plots(y, model.predict(x), names, values, importance_kind=kind)
