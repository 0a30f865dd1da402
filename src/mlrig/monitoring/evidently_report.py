"""Evidently's HTML report of a window — the only module that imports Evidently (≈10 s).

Data drift of the features against the latest version's reference sample, then regression or
classification quality of the labelled rows (a second Evidently report in the same file). A
window larger than ``max_rows`` is rendered on a seeded random sample of that many rows; the
count is returned and `mlrig monitor` prints it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from mlrig.monitoring.profile import ReferenceProfile
    from mlrig.predictions.window import Window

TARGET, PREDICTION, PROBABILITY = "target", "prediction", "prediction_probability"


def window_frame(window: Window) -> pd.DataFrame:
    """Every row of the window (at least one version): features, prediction, and target
    (NaN without feedback)."""
    import pandas as pd

    frames = []
    for part in window.parts:
        f = pd.DataFrame(part.x, columns=list(part.features))
        if part.categorical:
            f = f.infer_objects()
        f[PREDICTION] = part.predictions
        if part.probabilities is not None and part.probabilities.shape[1] == 2:
            f[PROBABILITY] = part.probabilities[:, 1]
        f[TARGET] = part.actual
        f["model_version"] = part.version
        frames.append(f)
    return pd.concat(frames, ignore_index=True)


def write_evidently_report(
    path: Path, window: Window, references: dict[str, ReferenceProfile], max_rows: int
) -> int:
    """Write the report to ``path``; returns how many window rows it covers."""
    import warnings

    if not window.parts:
        from mlrig.errors import MonitoringError

        raise MonitoringError("--html: no predictions in the window to report on")
    current = window_frame(window)
    if len(current) > max_rows:
        current = current.sample(max_rows, random_state=0).sort_index()
    ref = references[window.parts[-1].version]
    features = list(ref.features)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from evidently import DataDefinition, Dataset, Report
        from evidently.presets import DataDriftPreset

        numeric = [f for f in features if f not in ref.categorical]
        drift_def = DataDefinition(
            numerical_columns=numeric, categorical_columns=list(ref.categorical)
        )
        metrics: list[Any] = [DataDriftPreset(columns=features)]
        report = Report(metrics)
        snapshot = report.run(
            Dataset.from_pandas(current[features], data_definition=drift_def),
            Dataset.from_pandas(ref.sample[features], data_definition=drift_def),
        )
        html = snapshot.get_html_str(as_iframe=False)
        labelled = current[current[TARGET].notna()]
        if len(labelled) >= 2:
            html += _quality_html(labelled, ref.task)
    path.write_text(html, encoding="utf-8")
    return len(current)


def _quality_html(labelled: pd.DataFrame, task: str) -> str:
    from evidently import BinaryClassification, DataDefinition, Dataset, Regression, Report

    if task == "regression":
        from evidently.presets import RegressionPreset

        definition = DataDefinition(regression=[Regression(target=TARGET, prediction=PREDICTION)])
        preset: Any = RegressionPreset()
        frame = labelled[[TARGET, PREDICTION]]
    else:
        from evidently import MulticlassClassification
        from evidently.presets import ClassificationPreset

        frame = labelled[[TARGET, PREDICTION, *([PROBABILITY] if PROBABILITY in labelled else [])]]
        frame = frame.assign(
            **{TARGET: frame[TARGET].astype(int), PREDICTION: frame[PREDICTION].astype(int)}
        )
        if PROBABILITY in frame:
            task_def: Any = BinaryClassification(
                target=TARGET, prediction_probas=PROBABILITY, pos_label=1
            )
        else:
            task_def = MulticlassClassification(target=TARGET, prediction_labels=PREDICTION)
        definition = DataDefinition(classification=[task_def])
        preset = ClassificationPreset()
    snapshot = Report([preset]).run(Dataset.from_pandas(frame, data_definition=definition), None)
    return str(snapshot.get_html_str(as_iframe=False))
