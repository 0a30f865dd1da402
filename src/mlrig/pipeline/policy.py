"""When the closed loop retrains: a pure function of what monitoring saw and of the loop's
history, returning the decision and the sentence that explains it.

Triggers (any one is enough, each switched on in ``[loop]``): the drifted share of features
reaches ``drift_share``; the live metric is worse than offline by more than ``degradation``;
``new_labels`` labelled rows arrived since the last retrain; ``always`` (a plain retraining
schedule). Two guards win over every trigger: a retrain of the model already running, and the
cool-down after the last retrain.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from mlrig.monitoring.quality import ToleranceMode, is_degraded

DRIFT, DEGRADED, NEW_LABELS, ALWAYS = "drift", "degraded", "new_labels", "always"


@dataclass(frozen=True)
class Policy:
    drift_share: float | None = 0.5
    degradation: float | None = 0.1
    tolerance_mode: ToleranceMode = "relative"
    new_labels: int | None = None
    always: bool = False
    cooldown: dt.timedelta = dt.timedelta(minutes=30)


@dataclass(frozen=True)
class Observation:
    """What one monitoring pass saw for the version being served (None: too little data)."""

    verdict: str
    version: str | None
    drift_share: float | None
    metric: str | None
    live: float | None
    offline: float | None
    labels_since_retrain: int


@dataclass(frozen=True)
class History:
    last_retrain_at: dt.datetime | None
    running: str | None  # who holds the model's retrain lease, when someone does


@dataclass(frozen=True)
class Decision:
    retrain: bool
    reason: str
    triggers: tuple[str, ...]


def decide(obs: Observation, history: History, policy: Policy, now: dt.datetime) -> Decision:
    fired: list[str] = []
    said: list[str] = []
    if obs.drift_share is None:
        said.append("drift: too few predictions to say")
    elif policy.drift_share is not None:
        hit = obs.drift_share >= policy.drift_share
        said.append(
            f"drift share {obs.drift_share:.2f} {'>=' if hit else '<'} {policy.drift_share:g}"
        )
        fired += [DRIFT] if hit else []
    if obs.live is None or obs.offline is None or obs.metric is None:
        said.append("live quality: too few labelled predictions to say")
    elif policy.degradation is not None:
        worse = is_degraded(
            obs.metric, obs.live, obs.offline, policy.degradation, policy.tolerance_mode
        )
        unit = "of offline" if policy.tolerance_mode == "relative" else obs.metric
        said.append(
            f"live {obs.metric} {obs.live:.4g} vs offline {obs.offline:.4g} "
            f"({'worse by more than' if worse else 'within'} {policy.degradation:g} {unit})"
        )
        fired += [DEGRADED] if worse else []
    if policy.new_labels is not None:
        hit = obs.labels_since_retrain >= policy.new_labels
        said.append(
            f"{obs.labels_since_retrain} new labelled rows "
            f"({'>=' if hit else '<'} {policy.new_labels})"
        )
        fired += [NEW_LABELS] if hit else []
    if policy.always:
        said.append("always retrain on a pass")
        fired.append(ALWAYS)
    facts = "; ".join(said)
    if not fired:
        return Decision(False, f"no trigger: {facts}", ())
    triggers = tuple(fired)
    if history.running is not None:
        return Decision(False, f"a retrain is already running: {history.running}", triggers)
    if history.last_retrain_at is not None and now - history.last_retrain_at < policy.cooldown:
        until = (history.last_retrain_at + policy.cooldown).isoformat(timespec="seconds")
        return Decision(
            False, f"cool-down until {until} ({', '.join(triggers)} fired: {facts})", triggers
        )
    return Decision(True, f"retrain on {', '.join(triggers)}: {facts}", triggers)
