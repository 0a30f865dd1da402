"""mlrig's drift scores against Evidently's own DataDriftPreset on the same frames: the same
test chosen per column, scores equal to 1e-9, the same drifted columns."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from mlrig.monitoring.drift import column_drift, summarize
from tests.conftest import wine_frame

pytestmark = pytest.mark.slow

EVIDENTLY_NAMES = {
    "K-S p_value": "ks",
    "chi-square p_value": "chisquare",
    "Z-test p_value": "z",
    "Wasserstein distance (normed)": "wasserstein",
    "Jensen-Shannon distance": "jensenshannon",
}


def _with_extra_columns(frame: pd.DataFrame, seed: int, skew: float = 0.0) -> pd.DataFrame:
    """Wine features plus categorical, few-valued and binary columns (every branch of the rule)."""
    rng = np.random.default_rng(seed)
    n = len(frame)
    out = frame.drop(columns="quality").reset_index(drop=True)
    p = np.array([0.5 - skew, 0.3, 0.2 + skew])
    out["zone"] = rng.choice(["north", "south", "east"], n, p=p)
    out["flag"] = rng.choice(["y", "n"], n)
    out["grade"] = rng.choice([1.0, 2.0, 3.0, 4.0], n)
    out["binary"] = rng.choice([0.0, 1.0], n)
    return out


CATEGORICAL = ["zone", "flag"]


def _evidently(reference: pd.DataFrame, current: pd.DataFrame) -> tuple[dict[str, tuple[str, float]], float]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from evidently import DataDefinition, Dataset, Report
        from evidently.presets import DataDriftPreset

        numeric = [c for c in reference.columns if c not in CATEGORICAL]
        definition = DataDefinition(numerical_columns=numeric, categorical_columns=CATEGORICAL)
        snapshot = Report([DataDriftPreset()]).run(
            Dataset.from_pandas(current, data_definition=definition),
            Dataset.from_pandas(reference, data_definition=definition),
        )
    scores: dict[str, tuple[str, float]] = {}
    share = float("nan")
    for metric in snapshot.dict()["metrics"]:
        config = metric["config"]
        if config["type"].endswith("ValueDrift"):
            scores[config["column"]] = (EVIDENTLY_NAMES[config["method"]], float(metric["value"]))
        elif config["type"].endswith("DriftedColumnsCount"):
            share = float(metric["value"]["share"])
    return scores, share


@pytest.mark.parametrize(
    ("ref_rows", "current", "cur_rows", "skew"),
    [
        (1599, "white", 4898, 0.3),  # large reference: Wasserstein / Jensen–Shannon
        (1599, "red", 1599, 0.0),  # the same population: no drift
        (800, "white", 3000, 0.3),  # small reference: KS / chi-square / Z
        (600, "red", 900, 0.0),
    ],
)
def test_scores_tests_and_flags_equal_evidentlys(
    ref_rows: int, current: str, cur_rows: int, skew: float
) -> None:
    red = wine_frame("red").sample(frac=1.0, random_state=0)
    reference = _with_extra_columns(red.head(ref_rows), seed=1)
    source = wine_frame(current).sample(frac=1.0, random_state=1) if current == "white" else red
    window = _with_extra_columns(source.head(cur_rows), seed=2, skew=skew)
    expected, share = _evidently(reference, window)
    ours = [
        column_drift(
            c,
            "categorical" if c in CATEGORICAL else "numerical",
            reference[c].to_numpy(),
            window[c].to_numpy(),
        )
        for c in reference.columns
    ]
    for result in ours:
        test, score = expected[result.column]
        assert result.test == test, result.column
        assert result.score == pytest.approx(score, rel=1e-9, abs=1e-12), result.column
    assert summarize(ours).share == pytest.approx(share)
