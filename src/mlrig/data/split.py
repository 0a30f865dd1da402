"""A seeded train/held-out split: the same data and seed always give the same rows."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from mlrig.data.schema import FeatureSchema

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class Split:
    x_train: pd.DataFrame
    x_test: pd.DataFrame
    y_train: pd.Series
    y_test: pd.Series


def split_frame(
    frame: pd.DataFrame,
    schema: FeatureSchema,
    test_size: float = 0.25,
    seed: int = 42,
    stratify: bool = False,
) -> Split:
    """``stratify`` keeps class shares equal in both parts (classification)."""
    from sklearn.model_selection import train_test_split

    train, test = train_test_split(
        frame,
        test_size=test_size,
        random_state=seed,
        stratify=frame[schema.target] if stratify else None,
    )
    cols = list(schema.features)
    return Split(train[cols], test[cols], train[schema.target], test[schema.target])
