"""A seeded train/held-out split: the same data and seed always give the same rows."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mlrig.data.schema import FeatureSchema
from mlrig.errors import DataValidationError

if TYPE_CHECKING:
    import pandas as pd

# Fewest rows on either side for a regression: R² is undefined on one row (NaN, and the gate
# would compare NaN), and a model fitted on one row learns nothing.
MIN_SIDE_ROWS = 2


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
    source: str = "training data",
) -> Split:
    """``stratify`` keeps class shares equal in both parts (classification).

    Raises DataValidationError naming ``source`` (e.g. "data file x.csv") when the rows cannot be split so that both
    parts are usable (see ``split_problem``)."""
    from sklearn.model_selection import train_test_split

    problem = split_problem(frame[schema.target], test_size, stratify)
    if problem is not None:
        raise DataValidationError(f"{source}: {problem}")
    train, test = train_test_split(
        frame,
        test_size=test_size,
        random_state=seed,
        stratify=frame[schema.target] if stratify else None,
    )
    cols = list(schema.features)
    return Split(train[cols], test[cols], train[schema.target], test[schema.target])


def split_problem(target: pd.Series, test_size: float, stratify: bool) -> str | None:
    """Why ``target``'s rows cannot be split ``test_size`` held out, or None when they can.

    Mirrors what scikit-learn's ``train_test_split`` needs (it rounds the held-out count up),
    plus usable parts: a stratified split needs every class twice and at least as many rows
    as classes on each side; an unstratified one ``MIN_SIDE_ROWS`` rows on each side."""
    rows = len(target)
    n_test = math.ceil(test_size * rows)
    n_train = rows - n_test
    name = repr(target.name)
    if not stratify:
        if min(n_test, n_train) < MIN_SIDE_ROWS:
            return (
                f"too few rows to hold {test_size:g} out for evaluation: {rows} row(s) give "
                f"{n_train} training and {n_test} evaluation rows, need at least "
                f"{MIN_SIDE_ROWS} of each"
            )
        return None
    counts = target.value_counts(dropna=False)
    single = [c for c, n in counts.items() if n < 2]
    if single:
        shown = ", ".join(repr(_plain(c)) for c in single[:5])
        more = f" (and {len(single) - 5} more)" if len(single) > 5 else ""
        return (
            f"column {name}: class(es) {shown}{more} have a single row; a stratified "
            "split needs at least 2 rows of every class (add rows, or drop or merge the class)"
        )
    classes = len(counts)
    if min(n_test, n_train) < classes:
        return (
            f"column {name}: {rows} rows cannot hold {classes} classes on both sides of the "
            f"split ({n_train} training / {n_test} evaluation rows with test_size {test_size:g}); "
            f"each side needs at least one row per class"
        )
    return None


def training_problem(target: pd.Series, classification: bool) -> str | None:
    """Why the rows left for training (every copy of an evaluation row removed) cannot train
    a model, or None: too few rows, or a single class for a classifier. Data that repeats a
    few rows can lose all of them to the evaluation set."""
    rows = len(target)
    if rows < MIN_SIDE_ROWS:
        return (
            f"only {rows} training row(s) remain once every copy of an evaluation row is "
            f"removed (need at least {MIN_SIDE_ROWS}): the data repeats its rows; add "
            "distinct rows"
        )
    if classification and target.nunique() < 2:
        only = ", ".join(repr(_plain(c)) for c in target.unique()[:1])
        return (
            f"column {target.name!r}: the training rows hold only class {only} once every "
            "copy of an evaluation row is removed; a classifier needs two classes (add rows "
            "of the other classes)"
        )
    return None


def _plain(value: object) -> object:
    """A NumPy scalar as the Python value it holds, so messages read ``5`` not ``np.int64(5)``."""
    item = getattr(value, "item", None)
    return item() if callable(item) else value
