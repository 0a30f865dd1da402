"""Which rows may train next to a frozen evaluation set, and when that set's labels are stale."""

from __future__ import annotations

import pandas as pd

from mlrig.pipeline.rules import relabelled, training_rows


def test_training_rows_keyed_on_features_drop_a_relabelled_copy() -> None:
    """A row whose features equal an evaluation row's but whose target was relabelled (e.g. a
    new positive threshold) would leak the evaluation row into training."""
    frame = pd.DataFrame({"x": [1.0, 2.0, 3.0], "y": [1, 0, 1]})
    evaluation = pd.DataFrame({"x": [2.0], "y": [1]})  # same features as row 1, other label
    assert list(training_rows(frame, evaluation).index) == [0, 1, 2]  # whole-row key: leaks
    assert list(training_rows(frame, evaluation, ["x"]).index) == [0, 2]


def test_relabelled_counts_stored_rows_the_current_data_labels_otherwise() -> None:
    current = pd.DataFrame({"x": [1.0, 2.0, 2.0, 3.0], "y": [1, 0, 1, 0]})
    stored = pd.DataFrame({"x": [1.0, 2.0, 3.0, 9.0], "y": [0, 1, 0, 1]})
    # 1.0: now 1 (was 0) → relabelled; 2.0: current has both labels → not; 3.0: same;
    # 9.0: not in the current data → not counted
    assert relabelled(stored, current, ["x"], "y") == 1
    assert relabelled(current, current, ["x"], "y") == 0
