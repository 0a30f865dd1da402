"""Follow the registry: keep the version an alias names loaded, and swap atomically.

The current Predictor is one attribute; a request reads it once and uses that object to the
end, so a swap (a single assignment) never fails or mixes versions within a request.

Failures never take the served model away:
- registry unreachable (or slower than ``call_timeout_s``): the loaded model keeps answering,
  polls back off (the wait doubles up to ``poll_max_s``, back to the base after a success), and
  ``health()`` says since when and why;
- a version that fails to load, has no signature or another input contract: the current one
  keeps answering, the version is remembered with the reason and not loaded again until the
  alias moves (an explicit ``refresh()`` — ``/admin/reload`` — retries it).
Registry calls run in a daemon thread of their own, at most one at a time, so a hung store can
neither pile up threads nor hold a process at exit.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import re
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from mlrig.errors import ModelNotFoundError, ModelRefusedError, TrackingError
from mlrig.predictions.ids import DEFAULT_ID_FIELDS
from mlrig.serving.predictor import Predictor
from mlrig.tracking.loading import LoadedModel
from mlrig.tracking.registry import parse_model_ref

log = logging.getLogger(__name__)

Loader = Callable[[str], LoadedModel]
Resolver = Callable[[str], str]
OnServe = Callable[[LoadedModel], None]
T = TypeVar("T")


def next_delay(previous: float, base: float, cap: float, ok: bool) -> float:
    """Seconds to the next poll: ``base`` after a success; after a failure twice the previous
    wait, at most ``cap`` (never below ``base``)."""
    return base if ok else max(base, min(previous * 2, cap))


def describe(exc: BaseException, limit: int = 300) -> str:
    """One line for logs and /ready: the error and its first distinct cause, credentials
    masked (``scheme://user:***@host``), at most ``limit`` characters."""
    text = str(exc) or type(exc).__name__
    cause = exc.__cause__
    if cause is not None and str(cause) and str(cause) not in text:
        text = f"{text} (cause: {cause})"
    text = _CREDENTIALS.sub(r"\1:***@", " ".join(text.split()))
    return text if len(text) <= limit else text[: limit - 1] + "…"


_CREDENTIALS = re.compile(r"(\w+://[^:/@\s]+):[^@\s]*@")


def _iso(at: float | None) -> str | None:
    if at is None:
        return None
    return dt.datetime.fromtimestamp(at, dt.UTC).isoformat(timespec="seconds")


class ModelFollower:
    """Holds the live Predictor for ``ref`` (NAME@ALIAS or NAME/VERSION).

    ``resolver`` None means a fixed model (``mlrig serve --model-uri``): nothing to follow.
    ``on_serve`` is told each version that starts serving (the serving cache records it).
    """

    def __init__(
        self,
        ref: str,
        loader: Loader,
        resolver: Resolver | None,
        max_rows: int,
        *,
        on_serve: OnServe | None = None,
        call_timeout_s: float = 30.0,
        poll_max_s: float = 300.0,
        id_fields: Sequence[str] = DEFAULT_ID_FIELDS,
    ) -> None:
        self.ref = ref
        self._id_fields = tuple(id_fields)
        self._load = loader
        self._resolve = resolver
        self._on_serve = on_serve
        self._max_rows = max_rows
        self._timeout = call_timeout_s
        self._poll_max = poll_max_s
        self.current: Predictor | None = None
        self.source = "registry" if resolver else "uri"  # where the current model came from
        self.note: str | None = None  # why it came from there, when that is news
        self.rejected: dict[str, str] = {}  # version -> why it is not served
        self.last_success: float | None = None  # last registry answer
        self.failing_since: float | None = None
        self.last_error: str | None = None
        self.poll_failures = 0
        self.load_attempts = 0
        self.load_failures = 0
        self.delay: float | None = None  # the wait before the next poll
        self._named: str | None = None  # the version the alias named at the last answer
        self._busy_since: float | None = None  # a registry call still running (hung store)
        self._answered = False  # the last registry failure was a "not found" answer
        self._lock = asyncio.Lock()

    # --- start-up (blocking) ---------------------------------------------------------------

    def load_now(self) -> Predictor:
        """Blocking first load (at start-up). Raises TrackingError when the registry cannot
        answer, ModelNotFoundError / ModelRefusedError when the version cannot be served."""
        if self._resolve is None:
            model = self._call(self._load, self.ref)
            return self._serve(self._predictor(model), model, "uri")
        version = self._named = self._registry_call(self._resolve, self.ref)
        self._try_load(version)
        assert self.current is not None
        return self.current

    def adopt(self, model: LoadedModel, source: str, note: str) -> Predictor:
        """Serve ``model`` that came from elsewhere (the serving cache), saying why."""
        predictor = self._serve(self._predictor(model), None, source)
        self.note = note
        return predictor

    # --- following ---------------------------------------------------------------------------

    async def refresh(self, retry_rejected: bool = True) -> bool:
        """Load and swap in the version the alias names now, if it moved; True when swapped.

        Raises TrackingError when the registry cannot answer and ModelRefusedError when the
        named version cannot be served (the current one keeps serving either way). A version
        rejected before is skipped (False) unless ``retry_rejected``.
        """
        if self._resolve is None:
            return False
        async with self._lock:
            version = await asyncio.to_thread(self._registry_call, self._resolve, self.ref)
            current = self.current.version if self.current else None
            if version != self._named:  # the alias moved: what it named before may be retried
                self._named = version
                self.rejected.clear()
            if version == current:
                if self.source == "cache":  # the registry confirms the copy
                    self.source, self.note = "registry", None
                return False
            if version in self.rejected and not retry_rejected:
                return False
            await asyncio.to_thread(self._try_load, version)
            log.info("model %s: swapped version %s -> %s", self.ref, current, version)
            return True

    async def poll_once(self, base_s: float) -> float:
        """One poll (failures recorded, never raised); returns the seconds to wait before the
        next one (``next_delay``)."""
        try:
            await self.refresh(retry_rejected=False)
        except ModelRefusedError:
            pass  # recorded and logged where it happened; the registry answered
        except TrackingError:
            pass  # recorded by _registry_call
        except Exception as exc:  # a bug must not stop the polling: log it loudly
            log.exception("model %s: refresh failed: %s", self.ref, exc)
        ok = self.failing_since is None
        self.delay = next_delay(self.delay or base_s, base_s, max(self._poll_max, base_s), ok)
        return self.delay

    async def poll(self, interval_s: float) -> None:
        """Poll until cancelled: every ``interval_s`` seconds, backing off while failing."""
        delay = interval_s
        while True:
            await asyncio.sleep(delay)
            delay = await self.poll_once(interval_s)

    @property
    def busy(self) -> bool:
        """A registry call is still running (a hung store): no other starts meanwhile."""
        return self._busy_since is not None

    # --- what /ready and /metrics show ---------------------------------------------------------

    def health(self) -> dict[str, Any]:
        """``{"model": {...}, "registry": {...}}``: each with a ``status`` and, when not ok, a
        ``detail`` sentence saying why."""
        p = self.current
        model: dict[str, Any] = {
            "status": "ok" if p else "missing",
            "name": p.name if p else None,
            "version": p.version if p else None,
            "source": self.source,
            "loaded_at": _iso(p.loaded_at) if p else None,
        }
        if self.note:
            model["detail"] = self.note
        if self.rejected:
            model["status"] = "stale" if p else "missing"
            model["rejected"] = dict(self.rejected)
            model["detail"] = "; ".join(
                f"version {v} not served ({why})" for v, why in self.rejected.items()
            ) + (f"; still serving version {p.version}" if p else "")
        return {"model": model, "registry": self._registry_health()}

    def _registry_health(self) -> dict[str, Any]:
        if self._resolve is None:
            return {"status": "not used", "detail": f"serving {self.ref} without the registry"}
        out: dict[str, Any] = {
            "status": "ok",
            "last_success": _iso(self.last_success),
            "poll_failures": self.poll_failures,
        }
        if self.failing_since is not None:
            since = _iso(self.failing_since)
            out["since"] = since
            out["last_error"] = self.last_error
            if self._answered:  # e.g. the alias was deleted: reachable, but nothing to follow
                out["status"] = "not found"
                out["detail"] = f"{self.ref} not found since {since}: {self.last_error}"
            else:
                out["status"] = "unreachable"
                out["detail"] = f"unreachable since {since}, last error: {self.last_error}"
        if self.delay is not None:
            out["next_poll_in_s"] = round(self.delay, 3)
        return out

    def stats(self) -> dict[str, float]:
        """Numbers for Prometheus (see ServingMetrics.follow)."""
        return {
            "poll_failures": self.poll_failures,
            "last_success": self.last_success or 0.0,
            "registry_up": 0.0 if self.failing_since is not None else 1.0,
            "load_attempts": self.load_attempts,
            "load_failures": self.load_failures,
            "rejected": len(self.rejected),
        }

    # --- internals (blocking; run in a thread by the async methods) --------------------------

    def _try_load(self, version: str) -> None:
        """Load ``version`` and serve it, or remember why not (ModelRefusedError)."""
        name = parse_model_ref(self.ref)[0]
        self.load_attempts += 1
        try:
            model = self._call(self._load, f"{name}/{version}")
            predictor = self._predictor(model)
        except Exception as exc:
            if not isinstance(exc, ModelRefusedError) and not self._registry_answers():
                # The files may be fine and the store down: not the version's fault (the
                # failed check above is what gets recorded).
                raise TrackingError(f"version {version}: {describe(exc)}") from exc
            reason = describe(exc)
            self.rejected[version] = reason
            self.load_failures += 1
            kept = self.current.version if self.current else None
            log.error(
                "model %s: version %s not served (%s); keeping version %s",
                name,
                version,
                reason,
                kept,
            )
            raise ModelRefusedError(
                f"model {name!r} version {version}: not served ({reason})"
            ) from exc
        self._serve(predictor, model, "registry")

    def _predictor(self, model: LoadedModel) -> Predictor:
        # refuses a model without a signature
        predictor = Predictor(model, self._max_rows, self._id_fields)
        self._check_contract(predictor)
        predictor.self_check(model.example)
        return predictor

    def _check_contract(self, new: Predictor) -> None:
        old = self.current
        if old is None:
            return
        if (new.features, new.categorical, new.task) != (old.features, old.categorical, old.task):
            raise ModelRefusedError(
                f"model {new.name!r} version {new.version}: its inputs {list(new.features)} "
                f"({new.task}) differ from the served version {old.version}'s "
                f"{list(old.features)} ({old.task}); clients would break — restart the server "
                "to serve a new input contract"
            )

    def _serve(self, predictor: Predictor, model: LoadedModel | None, source: str) -> Predictor:
        self.current = predictor
        self.source, self.note = source, None
        if model is not None and self._on_serve is not None:
            try:
                self._on_serve(model)
            except Exception as exc:  # a full disk must not stop serving
                log.warning(
                    "model %s: could not record version %s: %s",
                    self.ref,
                    model.version,
                    describe(exc),
                )
        return predictor

    def _registry_answers(self) -> bool:
        assert self._resolve is not None
        try:
            self._registry_call(self._resolve, self.ref)
        except Exception:
            return False
        return True

    def _registry_call(self, fn: Callable[[str], T], arg: str) -> T:
        """``fn(arg)`` against the registry, recording success or failure."""
        try:
            result = self._call(fn, arg)
        except Exception as exc:
            err = self._registry_failed(exc)
            if err is exc:
                raise
            raise err from exc
        if self.failing_since is not None:
            log.warning(
                "model %s: registry reachable again after %d failed polls",
                self.ref,
                self.poll_failures,
            )
        self.last_success, self.failing_since, self.last_error = time.time(), None, None
        return result

    def _registry_failed(self, exc: BaseException) -> TrackingError:
        # ModelNotFoundError from the resolver = the registry answered "no such alias/model".
        self._answered = isinstance(exc, ModelNotFoundError)
        self.poll_failures += 1
        self.last_error = describe(exc)
        if self.failing_since is None:
            self.failing_since = time.time()
        serving = (
            f"still serving version {self.current.version}" if self.current else "no model yet"
        )
        state = "has no such model or alias" if self._answered else "unreachable"
        log.warning("model %s: registry %s (%s); %s", self.ref, state, self.last_error, serving)
        return exc if isinstance(exc, TrackingError) else TrackingError(self.last_error)

    def _call(self, fn: Callable[[str], T], arg: str) -> T:
        """``fn(arg)`` in a daemon thread, waiting at most ``call_timeout_s``; one at a time."""
        if self._busy_since is not None:
            raise TrackingError(
                f"a registry call has been running since {_iso(self._busy_since)} (no answer yet)"
            )
        box: dict[str, Any] = {}
        done = threading.Event()

        def run() -> None:
            try:
                box["result"] = fn(arg)
            except BaseException as exc:  # handed to the waiting caller
                box["error"] = exc
            finally:
                self._busy_since = None
                done.set()

        self._busy_since = time.time()
        threading.Thread(target=run, name="mlrig-registry", daemon=True).start()
        if not done.wait(self._timeout):
            raise TrackingError(f"no answer from the registry in {self._timeout:g} s")
        if "error" in box:
            raise box["error"]
        return box["result"]
