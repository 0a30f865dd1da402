"""The reference profile logged with every model version: what drift needs about its training
data, so monitoring never re-reads the training source.

It holds a bounded, seeded sample of the training features (all of them up to
``monitoring.reference_rows``, so on the red-wine data the sample *is* the training set and
drift scores equal Evidently's on the full reference), per-feature statistics, and the model's
predictions on its evaluation set (the reference for prediction drift).
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from mlrig.monitoring.drift import Kind

if TYPE_CHECKING:
    import pandas as pd

FORMAT = 1
SAMPLE_FILE = "monitoring/reference.parquet"
PREDICTIONS_FILE = "monitoring/reference_predictions.parquet"
PROFILE_FILE = "monitoring/profile.json"
FILES = (SAMPLE_FILE, PREDICTIONS_FILE, PROFILE_FILE)
PREDICTION = "prediction"  # the column name prediction drift is reported under
_TOP_CATEGORIES = 20


@dataclass(frozen=True)
class ReferenceProfile:
    task: str
    features: tuple[str, ...]
    categorical: tuple[str, ...]
    sample: pd.DataFrame  # ≤ reference_rows training rows; categorical values as str
    training_rows: int
    predictions: np.ndarray  # predictions on the evaluation set (labels for classifiers)
    stats: dict[str, dict[str, Any]] = field(default_factory=dict)

    def kind(self, column: str) -> Kind:
        if column == PREDICTION:
            return "categorical" if self.task == "classification" else "numerical"
        return "categorical" if column in self.categorical else "numerical"

    def reference(self, column: str) -> np.ndarray:
        if column == PREDICTION:
            if self.task == "classification":
                return labels_of(self.predictions)
            return self.predictions
        values = self.sample[column].to_numpy()
        return values.astype(object) if column in self.categorical else values.astype(np.float64)

    def to_files(self) -> dict[str, bytes]:
        """Artifact path → content, as logged next to the model."""
        import pandas as pd

        meta = {
            "format": FORMAT,
            "task": self.task,
            "features": list(self.features),
            "categorical": list(self.categorical),
            "training_rows": self.training_rows,
            "sample_rows": len(self.sample),
            "stats": self.stats,
        }
        return {
            SAMPLE_FILE: _parquet(self.sample),
            PREDICTIONS_FILE: _parquet(pd.DataFrame({PREDICTION: self.predictions})),
            PROFILE_FILE: json.dumps(meta, indent=1).encode(),
        }

    @classmethod
    def from_files(cls, files: dict[str, bytes]) -> ReferenceProfile:
        import pandas as pd

        meta = json.loads(files[PROFILE_FILE])
        sample = pd.read_parquet(io.BytesIO(files[SAMPLE_FILE]))
        preds = pd.read_parquet(io.BytesIO(files[PREDICTIONS_FILE]))[PREDICTION].to_numpy()
        return cls(
            meta["task"],
            tuple(meta["features"]),
            tuple(meta["categorical"]),
            sample,
            int(meta["training_rows"]),
            np.asarray(preds, dtype=np.float64),
            meta.get("stats", {}),
        )


def build_profile(
    x_train: pd.DataFrame,
    eval_predictions: Any,
    task: str,
    categorical: tuple[str, ...] = (),
    max_rows: int = 5000,
    seed: int = 0,
) -> ReferenceProfile:
    """Profile of a model's training features ``x_train`` and its evaluation predictions."""
    sample = x_train if len(x_train) <= max_rows else x_train.sample(max_rows, random_state=seed)
    sample = sample.reset_index(drop=True).copy()
    for col in categorical:
        sample[col] = sample[col].map(_label, na_action="ignore").astype(object)
    return ReferenceProfile(
        task,
        tuple(str(c) for c in x_train.columns),
        tuple(categorical),
        sample,
        len(x_train),
        np.asarray(eval_predictions, dtype=np.float64).ravel(),
        {str(c): column_stats(x_train[c], c in categorical) for c in x_train.columns},
    )


def column_stats(values: pd.Series, categorical: bool) -> dict[str, Any]:
    """Summary statistics shown next to the live values (JSON-safe)."""
    count, missing = int(values.notna().sum()), int(values.isna().sum())
    if categorical:
        freq = values.map(_label, na_action="ignore").value_counts(normalize=True)
        return {
            "count": count,
            "missing": missing,
            "categories": len(freq),
            "top": {str(k): float(v) for k, v in freq.head(_TOP_CATEGORIES).items()},
        }
    arr = values.to_numpy(dtype=np.float64)
    arr = arr[np.isfinite(arr)]
    if len(arr) == 0:
        return {"count": count, "missing": missing}
    q = np.quantile(arr, [0.05, 0.25, 0.5, 0.75, 0.95])
    return {
        "count": count,
        "missing": missing,
        "mean": float(arr.mean()),
        "std": float(arr.std()),
        "min": float(arr.min()),
        "p05": float(q[0]),
        "p25": float(q[1]),
        "median": float(q[2]),
        "p75": float(q[3]),
        "p95": float(q[4]),
        "max": float(arr.max()),
    }


def labels_of(values: np.ndarray) -> np.ndarray:
    """Class labels logged as float64 → the text labels (object array), converted once per
    distinct value rather than once per row."""
    distinct, inverse = np.unique(values, return_inverse=True)
    return np.asarray([_label(v) for v in distinct.tolist()], dtype=object)[inverse]


def _label(value: Any) -> str:
    """A category or class as the text the prediction log stores (7.0 and 7 are both "7")."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _parquet(frame: pd.DataFrame) -> bytes:
    buf = io.BytesIO()
    frame.to_parquet(buf, index=False)
    return buf.getvalue()
