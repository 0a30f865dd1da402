"""The retrain policy: triggers, guards and the sentence that explains the decision."""

from __future__ import annotations

import datetime as dt

import pytest

from mlrig.pipeline.policy import (
    ALWAYS,
    DEGRADED,
    DRIFT,
    NEW_LABELS,
    History,
    Observation,
    Policy,
    decide,
)

NOW = dt.datetime(2026, 11, 24, 12, tzinfo=dt.UTC)
CALM = Observation("ok", "1", 0.09, "rmse", 0.66, 0.65, 12)
FREE = History(None, None)


def _obs(**changes: object) -> Observation:
    return Observation(**{**CALM.__dict__, **changes})  # type: ignore[arg-type]


def test_calm_traffic_does_not_retrain_and_says_why() -> None:
    d = decide(CALM, FREE, Policy(), NOW)
    assert not d.retrain and d.triggers == ()
    assert "drift share 0.09 < 0.5" in d.reason and "within 0.1 of offline" in d.reason


@pytest.mark.parametrize(
    ("obs", "policy", "fired"),
    [
        (_obs(drift_share=0.5), Policy(), (DRIFT,)),  # the threshold itself fires
        (_obs(live=0.80), Policy(), (DEGRADED,)),  # rmse 0.80 > 0.65 * 1.1
        (_obs(live=0.80), Policy(degradation=0.2, tolerance_mode="absolute"), ()),
        (_obs(drift_share=0.8, live=0.9), Policy(), (DRIFT, DEGRADED)),
        (CALM, Policy(new_labels=10), (NEW_LABELS,)),
        (CALM, Policy(new_labels=13), ()),
        (CALM, Policy(always=True), (ALWAYS,)),
        (_obs(drift_share=0.9), Policy(drift_share=None), ()),  # switched off
        (_obs(drift_share=None, live=None, offline=None), Policy(), ()),  # too little data
    ],
)
def test_each_trigger_fires_at_its_threshold(
    obs: Observation, policy: Policy, fired: tuple[str, ...]
) -> None:
    d = decide(obs, FREE, policy, NOW)
    assert d.triggers == fired and d.retrain is bool(fired)


def test_higher_is_better_metrics_degrade_downwards() -> None:
    auc = _obs(metric="auc", live=0.70, offline=0.85)
    assert decide(auc, FREE, Policy(), NOW).triggers == (DEGRADED,)
    assert decide(_obs(metric="auc", live=0.90, offline=0.85), FREE, Policy(), NOW).triggers == ()


def test_cool_down_holds_a_fired_trigger_back_until_it_ends() -> None:
    drifted = _obs(drift_share=0.9)
    recent = History(NOW - dt.timedelta(minutes=10), None)
    d = decide(drifted, recent, Policy(cooldown=dt.timedelta(minutes=30)), NOW)
    assert not d.retrain and d.triggers == (DRIFT,) and "cool-down until" in d.reason
    assert "2026-11-24T12:20:00" in d.reason
    later = History(NOW - dt.timedelta(minutes=31), None)
    assert decide(drifted, later, Policy(cooldown=dt.timedelta(minutes=30)), NOW).retrain


def test_a_running_retrain_of_the_model_wins_over_every_trigger() -> None:
    busy = History(None, "'train:wine' is held by pid 42")
    d = decide(_obs(drift_share=1.0), busy, Policy(always=True), NOW)
    assert not d.retrain and "already running" in d.reason and "pid 42" in d.reason
