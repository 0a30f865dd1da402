"""One monitoring assessment: a window of logged predictions against each version's reference
profile and offline metrics. Pure: the window and the references come in, a verdict goes out.

A window that spans a model swap is assessed per version (each version's rows against that
version's own reference); the verdict is drift/degraded if any version with enough data is.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from mlrig.metrics import DEFAULT_METRIC
from mlrig.monitoring.drift import ColumnDrift, DriftSummary, column_drift, summarize
from mlrig.monitoring.profile import PREDICTION, ReferenceProfile, labels_of
from mlrig.monitoring.quality import LiveQuality, ToleranceMode, live_quality

if TYPE_CHECKING:
    import numpy as np

    from mlrig.predictions.window import VersionRows, Window

OK, DRIFT, DEGRADED, BOTH, INSUFFICIENT = (
    "ok",
    "drift",
    "degraded",
    "drift_and_degraded",
    "insufficient_data",
)
EXIT_CODES = {OK: 0, INSUFFICIENT: 0, DRIFT: 1, DEGRADED: 1, BOTH: 1}


@dataclass(frozen=True)
class Rules:
    """The thresholds of an assessment; ``metric`` None = the gate default of the task."""

    metric: str | None = None
    drift_share: float = 0.5
    min_rows: int = 100
    min_labels: int = 30
    tolerance: float = 0.1
    tolerance_mode: ToleranceMode = "relative"


@dataclass(frozen=True)
class VersionAssessment:
    version: str
    rows: int
    drift: DriftSummary | None  # None: fewer than min_rows rows
    prediction_drift: ColumnDrift | None
    quality: LiveQuality
    notes: tuple[str, ...] = ()

    @property
    def verdict(self) -> str:
        return _verdict(
            None if self.drift is None else self.drift.dataset_drift, self.quality.degraded
        )


@dataclass(frozen=True)
class Assessment:
    model: str
    computed_at: str  # ISO-8601 UTC
    window: dict[str, Any]
    verdict: str
    versions: tuple[VersionAssessment, ...]
    min_rows: int
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.verdict]

    @property
    def latest(self) -> VersionAssessment | None:
        return self.versions[-1] if self.versions else None

    def as_dict(self) -> dict[str, Any]:
        """The ``--json`` document (also stored for the server's /monitoring)."""
        out = asdict(self)
        for v, d in zip(self.versions, out["versions"], strict=True):
            d["verdict"] = v.verdict
        return out


def assess(
    model: str,
    window: Window,
    reference_for: Callable[[str], ReferenceProfile],
    offline_for: Callable[[str], dict[str, float]],
    rules: Rules,
    now: dt.datetime | None = None,
) -> Assessment:
    """Assess every version in ``window``; ``reference_for``/``offline_for`` take a version."""
    versions = tuple(
        _assess_version(part, reference_for(part.version), offline_for(part.version), rules)
        for part in window.parts
    )
    notes: list[str] = []
    if len(versions) > 1:
        notes.append(
            f"the window spans versions {', '.join(v.version for v in versions)}: each "
            "version's rows were compared with its own reference"
        )
    if not versions:
        notes.append(f"no predictions of {model!r} in the window ({rules.min_rows} needed)")
    drifts = [v.drift.dataset_drift for v in versions if v.drift is not None]
    degraded = [v.quality.degraded for v in versions if v.quality.degraded is not None]
    verdict = _verdict(any(drifts) if drifts else None, any(degraded) if degraded else None)
    return Assessment(
        model,
        (now or dt.datetime.now(dt.UTC)).isoformat(timespec="seconds"),
        {
            "since": None if window.since is None else window.since.isoformat(timespec="seconds"),
            "last": window.last,
            "first_at": _iso(window.first_at),
            "last_at": _iso(window.last_at),
            "rows": window.n_rows,
        },
        verdict,
        versions,
        rules.min_rows,
        tuple(notes),
    )


def _assess_version(
    part: VersionRows, ref: ReferenceProfile, offline: dict[str, float], rules: Rules
) -> VersionAssessment:
    notes: list[str] = []
    drift = prediction = None
    if part.n_rows >= rules.min_rows:
        columns = []
        for j, name in enumerate(part.features):
            if name not in ref.features:
                notes.append(f"column {name!r} is not in the reference profile: not tested")
                continue
            kind = ref.kind(name)
            columns.append(column_drift(name, kind, ref.reference(name), part.x[:, j]))
        drift = summarize(columns, rules.drift_share)
        prediction = column_drift(
            PREDICTION, ref.kind(PREDICTION), ref.reference(PREDICTION), _served(part, ref)
        )
    else:
        notes.append(f"{part.n_rows} predictions, {rules.min_rows} needed for a drift verdict")
    quality = live_quality(
        ref.task,
        part.predictions,
        part.probabilities,
        part.classes,
        part.actual,
        offline,
        rules.metric or DEFAULT_METRIC[ref.task],
        rules.tolerance,
        rules.tolerance_mode,
        rules.min_labels,
    )
    return VersionAssessment(part.version, part.n_rows, drift, prediction, quality, tuple(notes))


def _served(part: VersionRows, ref: ReferenceProfile) -> np.ndarray:
    return labels_of(part.predictions) if ref.task == "classification" else part.predictions


def _verdict(drift: bool | None, degraded: bool | None) -> str:
    if drift is None and degraded is None:
        return INSUFFICIENT
    if drift and degraded:
        return BOTH
    if drift:
        return DRIFT
    return DEGRADED if degraded else OK


def _iso(when: dt.datetime | None) -> str | None:
    return None if when is None else when.isoformat(timespec="seconds")
