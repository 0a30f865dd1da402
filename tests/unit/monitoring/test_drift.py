from __future__ import annotations

import numpy as np
import pytest

from mlrig.monitoring.drift import choose_test, column_drift, is_drift, summarize


@pytest.mark.parametrize(
    ("kind", "rows", "n_values", "test"),
    [
        ("numerical", 1000, 6, "ks"),
        ("numerical", 1000, 5, "chisquare"),
        ("numerical", 1000, 3, "chisquare"),
        ("numerical", 1000, 2, "z"),
        ("categorical", 1000, 40, "chisquare"),
        ("categorical", 1000, 2, "z"),
        ("numerical", 1001, 6, "wasserstein"),
        ("numerical", 1001, 5, "jensenshannon"),
        ("categorical", 1001, 2, "jensenshannon"),
        ("categorical", 5000, 300, "jensenshannon"),
    ],
)
def test_test_is_chosen_by_type_distinct_values_and_reference_size(
    kind: str, rows: int, n_values: int, test: str
) -> None:
    assert choose_test(kind, rows, n_values) == test  # type: ignore[arg-type]


def test_p_values_drift_below_the_threshold_and_distances_at_or_above_it() -> None:
    assert is_drift("ks", 0.05) and not is_drift("ks", 0.0501)
    assert is_drift("chisquare", 0.049) and not is_drift("chisquare", 0.05)
    assert is_drift("wasserstein", 0.1) and not is_drift("wasserstein", 0.0999)
    assert is_drift("jensenshannon", 0.3) and not is_drift("jensenshannon", 0.01)


def test_the_same_distribution_does_not_drift_and_a_shifted_one_does() -> None:
    rng = np.random.default_rng(0)
    ref = rng.normal(size=3000)
    same = column_drift("x", "numerical", ref, rng.normal(size=20_000))
    moved = column_drift("x", "numerical", ref, rng.normal(0.5, 1, size=20_000))
    assert same.test == moved.test == "wasserstein"
    assert not same.drifted and moved.drifted and moved.score > 0.4


def test_distinct_values_count_both_sides_like_evidently() -> None:
    ref = np.array([1.0, 2.0, 3.0] * 100)  # 3 values in a small reference: chi-square
    assert column_drift("x", "numerical", ref, ref).test == "chisquare"
    wider = np.concatenate([ref, [4.0, 5.0, 6.0]])  # 6 values together: KS
    assert column_drift("x", "numerical", ref, wider).test == "ks"


def test_missing_and_infinite_values_are_dropped_first() -> None:
    ref = np.array([1.0, 2.0, np.nan, np.inf] * 50)
    result = column_drift("x", "numerical", ref, np.array([1.0, 2.0] * 50))
    assert result.reference_rows == 100 and result.current_rows == 100
    assert (result.test == "z" and result.score == 1.0) or not result.drifted


def test_categorical_columns_compare_frequencies() -> None:
    ref = np.array(["a", "b", "c"] * 400, dtype=object)
    skewed = np.array(["a"] * 900 + ["b"] * 50 + ["c"] * 50, dtype=object)
    result = column_drift("zone", "categorical", ref, skewed)
    assert result.test == "jensenshannon" and result.drifted


def test_a_column_with_no_usable_value_is_a_named_error() -> None:
    with pytest.raises(ValueError, match=r"column 'x'.*current"):
        column_drift("x", "numerical", np.ones(10), np.array([np.nan, np.inf]))


def test_dataset_drift_when_the_share_reaches_the_threshold() -> None:
    rng = np.random.default_rng(1)
    ref = rng.normal(size=2000)
    cols = [
        column_drift("a", "numerical", ref, ref + 1),
        column_drift("b", "numerical", ref, ref),
    ]
    assert summarize(cols, 0.5).dataset_drift and summarize(cols, 0.5).share == 0.5
    assert not summarize(cols, 0.6).dataset_drift
    assert summarize(cols).column("a").drifted


@pytest.mark.parametrize("seed", range(6))
def test_wasserstein_from_distinct_values_equals_scipys(seed: int) -> None:
    from scipy.stats import wasserstein_distance

    from mlrig.monitoring.drift import wasserstein_1d

    rng = np.random.default_rng(seed)
    u = rng.normal(size=rng.integers(1, 3000))
    v = np.round(rng.normal(0.5, 2, size=rng.integers(1, 5000)), int(rng.integers(0, 3)))
    if seed % 2:
        u = np.concatenate([u, v[:10]])  # shared values on both sides
    assert wasserstein_1d(u, v) == pytest.approx(wasserstein_distance(u, v), rel=1e-12)
