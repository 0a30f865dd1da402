"""The closed loop's own history in the store: one row per pass, read back by the policy."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import sqlalchemy as sa

from mlrig.predictions.store import PredictionStore, as_utc, loop_passes

# what a pass ended with
NO_RETRAIN, PROMOTED, KEPT, FAILED, BUSY = "no_retrain", "promoted", "kept", "failed", "busy"
OUTCOMES = (NO_RETRAIN, PROMOTED, KEPT, FAILED, BUSY)


@dataclass(frozen=True)
class PassRecord:
    model_name: str
    started_at: dt.datetime
    finished_at: dt.datetime
    trigger: str
    retrain: bool
    outcome: str
    version: str | None
    result: str  # JSON


def save_pass(store: PredictionStore, record: PassRecord) -> int:
    with store.engine.begin() as conn:
        done = conn.execute(loop_passes.insert().values(**record.__dict__))
        key = done.inserted_primary_key
        assert key is not None
        return int(key[0])


def last_retrain_at(store: PredictionStore, model_name: str) -> dt.datetime | None:
    """When the newest pass that retrained ``model_name`` started (failed attempts count: a
    retrain that keeps failing must not run on every pass)."""
    query = sa.select(sa.func.max(loop_passes.c.started_at)).where(
        loop_passes.c.model_name == model_name, loop_passes.c.retrain.is_(True)
    )
    with store.engine.connect() as conn:
        when = conn.scalar(query)
    return None if when is None else as_utc(when)


def recent_passes(store: PredictionStore, model_name: str, limit: int = 20) -> list[PassRecord]:
    """The newest ``limit`` passes of ``model_name``, newest first."""
    query = (
        sa.select(loop_passes)
        .where(loop_passes.c.model_name == model_name)
        .order_by(loop_passes.c.id.desc())
        .limit(limit)
    )
    with store.engine.connect() as conn:
        rows = conn.execute(query).mappings().all()
    return [PassRecord(**{k: v for k, v in r.items() if k != "id"}) for r in rows]
