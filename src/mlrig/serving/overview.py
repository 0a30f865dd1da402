"""What the overview page and /monitoring show, assembled without a web framework.

The server never computes drift: it reads the latest result `mlrig monitor` stored in the
prediction store. Store reads run in a thread; the champion history (an MLflow call) is cached
for ``history_ttl_s`` so a page refreshing every few seconds does not hammer the registry.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Callable
from importlib import resources
from typing import Any

import orjson

from mlrig.errors import MlrigError
from mlrig.predictions.store import PredictionStore
from mlrig.serving.follower import ModelFollower
from mlrig.serving.metrics import ServingMetrics

History = Callable[[str], list[dict[str, Any]]]
STATIC_FILES = {
    "overview.js": "text/javascript; charset=utf-8",
    "overview.css": "text/css; charset=utf-8",
}


def static_file(name: str) -> bytes:
    return (resources.files("mlrig.serving") / "static" / name).read_bytes()


class Overview:
    def __init__(
        self,
        follower: ModelFollower,
        store: PredictionStore,
        metrics: ServingMetrics,
        history: History | None = None,
        history_ttl_s: float = 30.0,
    ) -> None:
        self._follower = follower
        self._store = store
        self._metrics = metrics
        self._history = history
        self._ttl = history_ttl_s
        self._cached: tuple[float, str, list[dict[str, Any]]] | None = None

    async def monitoring(self) -> dict[str, Any]:
        """The latest stored monitoring result of the served model, with a report link."""
        p = self._follower.current
        if p is None:
            return {"verdict": None, "message": "no model loaded yet"}
        latest = await asyncio.to_thread(self._store.latest_monitoring, p.name)
        if latest is None:
            return {
                "model": p.name,
                "verdict": None,
                "message": f"no monitoring result for {p.name!r} yet: run `mlrig monitor`",
            }
        result_id, text = latest
        out: dict[str, Any] = orjson.loads(text)
        out["result_id"] = result_id
        out["report_url"] = f"/monitoring/report/{result_id}"
        return out

    async def overview(self) -> dict[str, Any]:
        p = self._follower.current
        logged, labelled = await asyncio.to_thread(
            lambda: (self._store.count(), self._store.feedback_count())
        )
        return {
            "model": None if p is None else p.name,
            "version": None if p is None else p.version,
            "task": None if p is None else p.task,
            "serving_since": None if p is None else _iso(p.loaded_at),
            "server_started": _iso(self._metrics.started),
            "requests": self._metrics.recent(),
            "predictions": {
                "logged": logged,
                "with_feedback": labelled,
                "feedback_share": round(labelled / logged, 4) if logged else 0.0,
            },
            "monitoring": await self.monitoring(),
            "champion_history": [] if p is None else await self._champion_history(p.name),
        }

    async def _champion_history(self, name: str) -> list[dict[str, Any]]:
        if self._history is None:
            return []
        now = time.monotonic()
        if self._cached is None or self._cached[1] != name or now - self._cached[0] > self._ttl:
            try:
                history = await asyncio.to_thread(self._history, name)
            except MlrigError:  # the registry is down: the page still shows everything else
                history = self._cached[2] if self._cached else []
            self._cached = (now, name, history)
        return self._cached[2]


def _iso(epoch_s: float) -> str:
    return dt.datetime.fromtimestamp(epoch_s, dt.UTC).isoformat(timespec="seconds")
