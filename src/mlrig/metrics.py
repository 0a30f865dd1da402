"""Model quality metrics for both tasks: pure functions of labels, scores and predictions.

Shared by offline evaluation (training) and live quality from feedback (monitoring), so a
model's offline and live numbers are computed by the same code.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

METRICS: dict[str, tuple[str, ...]] = {
    "regression": ("rmse", "mae", "r2"),
    "classification": ("roc_auc", "ks", "log_loss", "accuracy", "f1"),
}
DEFAULT_METRIC = {"regression": "rmse", "classification": "ks"}
LOWER_IS_BETTER = frozenset({"rmse", "mae", "log_loss"})


def regression_metrics(y_true: npt.ArrayLike, y_pred: npt.ArrayLike) -> dict[str, float]:
    """RMSE, MAE and R² of ``y_pred`` against ``y_true`` (same length, 1-D)."""
    from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

    return {
        "rmse": math.sqrt(mean_squared_error(y_true, y_pred)),
        "mae": float(mean_absolute_error(y_true, y_pred)),
        "r2": float(r2_score(y_true, y_pred)),
    }


def classification_metrics(
    y_true: npt.ArrayLike, proba: np.ndarray, classes: npt.ArrayLike
) -> dict[str, float]:
    """ROC-AUC, KS, log-loss, accuracy and F1 from class probabilities (columns = ``classes``).

    Multiclass AUC and KS are one-vs-rest macro averages; F1 is macro-averaged.
    """
    import numpy as np
    from sklearn.metrics import accuracy_score, f1_score, log_loss, roc_auc_score

    y = np.asarray(y_true)
    labels = np.asarray(classes)
    predicted = labels[np.argmax(proba, axis=1)]
    binary = len(labels) == 2
    present = np.isin(labels, y)
    if binary:
        auc = float(roc_auc_score(y == labels[1], proba[:, 1])) if present.all() else math.nan
        ks = ks_statistic(y == labels[1], proba[:, 1])
    else:
        per_class = [
            (roc_auc_score(y == c, proba[:, i]), ks_statistic(y == c, proba[:, i]))
            for i, c in enumerate(labels)
            if present[i] and not (y == c).all()
        ]
        auc = float(np.mean([a for a, _ in per_class])) if per_class else math.nan
        ks = float(np.mean([k for _, k in per_class])) if per_class else math.nan
    return {
        "roc_auc": auc,
        "ks": ks,
        "log_loss": float(log_loss(y, proba, labels=labels)),
        "accuracy": float(accuracy_score(y, predicted)),
        "f1": float(
            f1_score(
                y,
                predicted,
                average="binary" if binary else "macro",
                pos_label=labels[1] if binary else 1,
                zero_division=0,
            )
        ),
    }


def ks_statistic(is_positive: npt.ArrayLike, score: npt.ArrayLike) -> float:
    """Kolmogorov–Smirnov distance between the score distributions of positives and negatives:
    the largest gap between their empirical CDFs (= max TPR − FPR over thresholds)."""
    import numpy as np
    from sklearn.metrics import roc_curve

    pos = np.asarray(is_positive, dtype=bool)
    if pos.all() or not pos.any():
        return math.nan
    fpr, tpr, _ = roc_curve(pos, score)
    return float(np.max(tpr - fpr))
