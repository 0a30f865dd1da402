"""Model-evaluation figures rendered to PNG bytes, so the tracking layer can log them as artifacts.

Figures are built on ``matplotlib.figure.Figure`` with an Agg canvas, never pyplot: no global
figure registry, no GUI backend, nothing that leaks between calls or threads.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy.typing as npt
    from matplotlib.axes import Axes

FIGSIZE_IN = (5.0, 4.0)
DPI = 100
TOP_FEATURES = 20
_MAX_LABEL = 32  # long feature names would squeeze the bars out of a 5-inch figure


def _render(draw: Callable[[Axes], None], *, text_labels: bool = False) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    # Constrained layout costs an extra draw (~50 ms); only free-text tick labels need it.
    fig = Figure(figsize=FIGSIZE_IN, dpi=DPI, layout="constrained" if text_labels else None)
    if not text_labels:
        fig.subplots_adjust(left=0.15, right=0.96, bottom=0.12, top=0.92)
    FigureCanvasAgg(fig)
    try:
        ax = fig.add_subplot()
        draw(ax)
        if not text_labels:  # short tick labels fit fixed margins: 250000 -> 2.5 and "1e5"
            ax.ticklabel_format(style="sci", scilimits=(-3, 4))
        buf = io.BytesIO()
        # No "Software" version stamp, so identical inputs give identical bytes.
        fig.savefig(buf, format="png", metadata={"Software": None})
        return buf.getvalue()
    finally:
        fig.clear()


def _importance_png(feature_names: Sequence[str], importances: Any, kind: str) -> bytes:
    import numpy as np

    values = np.asarray(importances, dtype=float).ravel()
    if len(values) != len(feature_names):
        raise ValueError(f"{len(values)} importances for {len(feature_names)} feature names")
    top = np.argsort(-np.abs(values), kind="stable")[:TOP_FEATURES][::-1]  # largest at the top
    labels = [str(feature_names[i])[:_MAX_LABEL] for i in top]

    def draw(ax: Axes) -> None:
        colors = ["tab:blue" if v >= 0 else "tab:red" for v in values[top]]
        ax.barh(range(len(top)), values[top], color=colors)
        ax.set_yticks(range(len(top)), labels, fontsize=7)
        ax.axvline(0.0, color="black", linewidth=0.8)
        ax.set_title(f"Feature {kind} (top {len(top)} by |value|)")

    return _render(draw, text_labels=True)


def regression_plots(
    y_true: npt.ArrayLike,
    y_pred: npt.ArrayLike,
    feature_names: Sequence[str] = (),
    importances: npt.ArrayLike | None = None,
    importance_kind: str = "importance",
) -> dict[str, bytes]:
    """PNGs keyed by artifact file name; bias and heteroscedasticity show here, not in RMSE.

    ``importances`` is 1-D, aligned with ``feature_names``; without it there is no importance chart.
    ``importance_kind`` names it in the title ("coefficients" for linear models).
    """
    import numpy as np

    y = np.asarray(y_true, dtype=float).ravel()
    p = np.asarray(y_pred, dtype=float).ravel()

    def scatter(ax: Axes) -> None:
        lo, hi = float(min(y.min(), p.min())), float(max(y.max(), p.max()))
        ax.scatter(y, p, s=8, alpha=0.5)
        ax.plot([lo, hi], [lo, hi], color="black", linewidth=1, label="y = x")
        ax.set(xlabel="actual", ylabel="predicted", title="Predicted vs actual")
        ax.legend(loc="upper left")

    def residuals(ax: Axes) -> None:
        ax.scatter(p, y - p, s=8, alpha=0.5)
        ax.axhline(0.0, color="black", linewidth=1)
        ax.set(xlabel="predicted", ylabel="actual − predicted", title="Residuals")

    out = {"predicted_vs_actual.png": _render(scatter), "residuals.png": _render(residuals)}
    if importances is not None:
        out["feature_importance.png"] = _importance_png(feature_names, importances, importance_kind)
    return out


def classification_plots(
    y_true: npt.ArrayLike,
    proba: npt.ArrayLike,
    classes: Sequence[Any],
    feature_names: Sequence[str] = (),
    importances: npt.ArrayLike | None = None,
    importance_kind: str = "importance",
) -> dict[str, bytes]:
    """PNGs keyed by artifact file name: ranking quality (ROC, KS) and the errors behind accuracy.

    ``proba`` is (n, n_classes) with columns in ``classes`` order; for two classes ``classes[1]``
    is the positive class. With more classes, ROC and KS are one-vs-rest per class; a class with
    no positives (or no negatives) in ``y_true`` has no curve rather than a warning.
    """
    import numpy as np
    from sklearn.metrics import auc, confusion_matrix, roc_curve

    y = np.asarray(y_true)
    scores = np.asarray(proba, dtype=float)
    if scores.ndim != 2 or scores.shape[1] != len(classes):
        raise ValueError(f"proba has shape {scores.shape}, expected (n, {len(classes)})")
    binary = len(classes) == 2
    shown = [1] if binary else list(range(len(classes)))
    curves: dict[int, tuple[Any, Any, Any]] = {}  # column -> (fpr, tpr, thresholds)
    for k in shown:
        positive = y == classes[k]
        if 0 < positive.sum() < len(y):
            curves[k] = roc_curve(positive, scores[:, k], drop_intermediate=False)

    def roc(ax: Axes) -> None:
        for k, (fpr, tpr, _) in curves.items():
            ax.plot(fpr, tpr, label=f"{classes[k]} (AUC = {auc(fpr, tpr):.3f})")
        ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1)
        ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC curve")
        if curves:  # an empty legend is a matplotlib warning
            ax.legend(loc="lower right", fontsize=8)

    def ks(ax: Axes) -> None:
        best = 0.0
        for k, (fpr, tpr, thr) in curves.items():
            # Drop roc_curve's +inf sentinel; below threshold t: CDF = 1 - rate(score >= t).
            t, cdf_pos, cdf_neg = thr[1:], 1 - tpr[1:], 1 - fpr[1:]
            gap = cdf_neg - cdf_pos
            i = int(np.argmax(np.abs(gap)))
            best = max(best, float(abs(gap[i])))
            if binary:
                ax.step(t, cdf_pos, where="post", label=f"{classes[k]} (positive)")
                ax.step(t, cdf_neg, where="post", label=f"{classes[0]} (negative)")
                ax.vlines(t[i], cdf_pos[i], cdf_neg[i], colors="black", linestyles="--")
            else:
                (line,) = ax.step(t, gap, where="post", label=f"{classes[k]} vs rest")
                ax.vlines(t[i], 0.0, gap[i], colors=line.get_color(), linestyles="--")
        ylabel = "cumulative share" if binary else "CDF gap (rest − class)"
        title = "KS" if binary else "KS, one-vs-rest (max)"
        ax.set(xlabel="score", ylabel=ylabel, title=f"{title} = {best:.3f}")
        if curves:  # loc="best" is slow on thousands of points; low scores have CDFs near 0
            ax.legend(loc="upper left", fontsize=8)

    predicted = np.asarray(classes)[scores.argmax(axis=1)]
    cm = confusion_matrix(y, predicted, labels=list(classes))

    def matrix(ax: Axes) -> None:
        ax.imshow(cm, cmap="Blues")
        for (i, j), n in np.ndenumerate(cm):
            color = "white" if n > cm.max() / 2 else "black"
            ax.text(j, i, str(n), ha="center", va="center", color=color)
        ticks, labels = range(len(classes)), [str(c) for c in classes]
        ax.set_xticks(ticks, labels)
        ax.set_yticks(ticks, labels)
        ax.set(xlabel="predicted", ylabel="actual", title="Confusion matrix")

    out = {"roc_curve.png": _render(roc), "ks_curve.png": _render(ks)}
    out["confusion_matrix.png"] = _render(matrix, text_labels=True)
    if importances is not None:
        out["feature_importance.png"] = _importance_png(feature_names, importances, importance_kind)
    return out
