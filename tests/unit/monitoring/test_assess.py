from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from mlrig.monitoring.assess import Rules, assess
from mlrig.monitoring.profile import PREDICTION, ReferenceProfile, build_profile
from mlrig.predictions.window import VersionRows, Window

FEATURES = ("a", "b")


def _profile(seed: int = 0, shift: float = 0.0) -> ReferenceProfile:
    rng = np.random.default_rng(seed)
    x = pd.DataFrame(rng.normal(shift, 1, size=(1500, 2)), columns=list(FEATURES))
    return build_profile(x, rng.normal(5, 1, 400), "regression")


def _rows(version: str, x: np.ndarray, preds: np.ndarray, actual: np.ndarray | None = None) -> VersionRows:
    n = len(x)
    return VersionRows(
        "m", version, FEATURES, False, x, preds, None, None,
        np.full(n, np.nan) if actual is None else actual,
    )


def _window(*parts: VersionRows) -> Window:
    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    return Window("m", now, None, now, now, tuple(parts))


def test_profile_round_trips_through_its_files() -> None:
    profile = _profile()
    again = ReferenceProfile.from_files(profile.to_files())
    assert again.features == FEATURES and again.training_rows == 1500
    pd.testing.assert_frame_equal(again.sample, profile.sample)
    np.testing.assert_array_equal(again.reference(PREDICTION), profile.predictions)
    assert again.stats["a"]["mean"] == pytest.approx(profile.sample["a"].mean())


def test_profile_keeps_a_bounded_seeded_sample() -> None:
    x = pd.DataFrame({"a": np.arange(20_000.0)})
    p1 = build_profile(x, np.zeros(10), "regression", max_rows=5000)
    p2 = build_profile(x, np.zeros(10), "regression", max_rows=5000)
    assert len(p1.sample) == 5000 and p1.training_rows == 20_000
    pd.testing.assert_frame_equal(p1.sample, p2.sample)


def test_categories_are_compared_as_the_text_the_log_stores() -> None:
    x = pd.DataFrame({"zone": [7, 41, 7.0], "km": [1.0, 2.0, 3.0]})
    profile = build_profile(x, np.zeros(3), "regression", categorical=("zone",))
    assert profile.reference("zone").tolist() == ["7", "41", "7"]
    assert profile.kind("zone") == "categorical" and profile.kind("km") == "numerical"


def test_verdicts_over_a_window_from_the_reference_population_and_a_moved_one() -> None:
    rng = np.random.default_rng(5)
    ref = _profile()
    same = _rows("1", rng.normal(0, 1, (3000, 2)), rng.normal(5, 1, 3000))
    moved = _rows("1", rng.normal(2, 1, (3000, 2)), rng.normal(5, 1, 3000))
    rules = Rules(min_rows=100)
    ok = assess("m", _window(same), lambda v: ref, lambda v: {"rmse": 1.0}, rules)
    bad = assess("m", _window(moved), lambda v: ref, lambda v: {"rmse": 1.0}, rules)
    assert ok.verdict == "ok" and ok.exit_code == 0
    assert bad.verdict == "drift" and bad.exit_code == 1
    assert bad.latest is not None and bad.latest.drift is not None
    assert {c.column for c in bad.latest.drift.columns if c.drifted} == {"a", "b"}


def test_too_few_rows_is_insufficient_data_with_counts_not_a_verdict() -> None:
    rng = np.random.default_rng(0)
    part = _rows("1", rng.normal(3, 1, (20, 2)), rng.normal(5, 1, 20))
    result = assess("m", _window(part), lambda v: _profile(), lambda v: {}, Rules(min_rows=100))
    assert result.verdict == "insufficient_data" and result.exit_code == 0
    assert "20 predictions, 100 needed" in result.versions[0].notes[0]
    empty = assess("m", _window(), lambda v: _profile(), lambda v: {}, Rules())
    assert empty.verdict == "insufficient_data" and "no predictions" in empty.notes[0]


def test_degraded_with_enough_labels_even_without_drift() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(0, 1, (500, 2))
    actual = rng.normal(5, 1, 500)
    part = _rows("1", x, actual + rng.normal(0, 2, 500), actual)
    result = assess("m", _window(part), lambda v: _profile(), lambda v: {"rmse": 1.0}, Rules())
    assert result.verdict == "degraded"
    q = result.versions[0].quality
    assert q.degraded and q.live is not None and q.live > 1.5 and q.labelled == 500


def test_a_window_across_a_swap_compares_each_version_with_its_own_reference() -> None:
    rng = np.random.default_rng(2)
    refs = {"1": _profile(0, 0.0), "2": _profile(1, 3.0)}  # version 2 was trained on moved data
    old = _rows("1", rng.normal(0, 1, (1000, 2)), rng.normal(5, 1, 1000))
    new = _rows("2", rng.normal(3, 1, (1000, 2)), rng.normal(5, 1, 1000))
    result = assess("m", _window(old, new), refs.__getitem__, lambda v: {}, Rules())
    assert [v.version for v in result.versions] == ["1", "2"]
    assert all(v.verdict == "ok" for v in result.versions) and result.verdict == "ok"
    assert "each version's rows were compared with its own reference" in result.notes[0]
    as_json = result.as_dict()
    assert as_json["versions"][1]["verdict"] == "ok" and as_json["window"]["rows"] == 2000
