"""Follow the registry: keep the version an alias names loaded, and swap atomically.

The current Predictor is one attribute; a request reads it once and uses that object to the
end, so a swap (a single assignment) never fails or mixes versions within a request.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from mlrig.serving.predictor import Predictor
from mlrig.tracking.loading import LoadedModel
from mlrig.tracking.registry import parse_model_ref

log = logging.getLogger(__name__)

Loader = Callable[[str], LoadedModel]
Resolver = Callable[[str], str]


class ModelFollower:
    """Holds the live Predictor for ``ref`` (NAME@ALIAS or NAME/VERSION)."""

    def __init__(self, ref: str, loader: Loader, resolver: Resolver, max_rows: int) -> None:
        self.ref = ref
        self._load = loader
        self._resolve = resolver
        self._max_rows = max_rows
        self.current: Predictor | None = None
        self._lock = asyncio.Lock()

    def load_now(self) -> Predictor:
        """Blocking first load (at start-up); raises ModelNotFoundError when absent."""
        self.current = Predictor(self._load(self.ref), self._max_rows)
        return self.current

    async def refresh(self) -> bool:
        """Load and swap in the version the alias names now, if it moved; True when swapped."""
        async with self._lock:
            version = await asyncio.to_thread(self._resolve, self.ref)
            if self.current is not None and version == self.current.version:
                return False
            name = parse_model_ref(self.ref)[0]
            model = await asyncio.to_thread(self._load, f"{name}/{version}")
            old = self.current.version if self.current else None
            self.current = Predictor(model, self._max_rows)
            log.info("model %s: swapped version %s -> %s", name, old, version)
            return True

    async def poll(self, interval_s: float) -> None:
        """Refresh every ``interval_s`` seconds until cancelled; errors are logged, not fatal."""
        while True:
            await asyncio.sleep(interval_s)
            try:
                await self.refresh()
            except Exception as exc:  # the old model keeps serving
                log.warning("model %s: refresh failed: %s", self.ref, exc)
