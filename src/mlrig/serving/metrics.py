"""Prometheus metrics of one server process (its own registry: no module-level state)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
    SummaryMetricFamily,
)
from prometheus_client.registry import Collector

from mlrig.predictions.stages import StageClock
from mlrig.predictions.writer import WriterHealth

_RECENT = 4096  # requests kept for the overview's rate and latency percentiles
_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class ServingMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "mlrig_requests",
            "HTTP requests by endpoint and status.",
            ["endpoint", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "mlrig_request_latency_seconds",
            "Request latency by endpoint.",
            ["endpoint"],
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self.logged = Counter(
            "mlrig_predictions_logged",
            "Predictions committed to the store.",
            registry=self.registry,
        )
        self.model = Gauge(
            "mlrig_model_info",
            "The served model version (value 1).",
            ["name", "version"],
            registry=self.registry,
        )

        self.started = time.time()
        self.total = 0
        self._at = np.zeros(_RECENT)
        self._latency = np.zeros(_RECENT)

    def record(self, seconds: float) -> None:
        """One answered prediction request (feeds the overview page's recent figures)."""
        i = self.total % _RECENT
        self._at[i] = time.time()
        self._latency[i] = seconds
        self.total += 1

    def recent(self, horizon_s: float = 60.0) -> dict[str, float | int | None]:
        """Request rate over the last ``horizon_s`` seconds and latency percentiles (ms) of
        the last 4,096 requests."""
        n = min(self.total, _RECENT)
        now = time.time()
        span = min(horizon_s, max(now - self.started, 1e-9))
        at, latency = self._at[:n], self._latency[:n] * 1000
        rate = float((at >= now - span).sum()) / span
        pct = np.percentile(latency, [50, 95, 99]) if n else [None, None, None]
        return {
            "total": self.total,
            "rate_per_s": round(rate, 3),
            "p50_ms": None if pct[0] is None else round(float(pct[0]), 3),
            "p95_ms": None if pct[1] is None else round(float(pct[1]), 3),
            "p99_ms": None if pct[2] is None else round(float(pct[2]), 3),
            "sample": n,
        }

    def watch_writer(self, health: Callable[[], WriterHealth]) -> None:
        """Export the prediction log writer's health, read at each scrape (nothing on the hot
        path)."""
        self.registry.register(_WriterCollector(health))

    def watch_stages(self, clock: StageClock) -> None:
        """Export the hot path's per-stage time as ``mlrig_request_stage_seconds{stage}``
        (count and sum: the mean per request is sum / count; read at each scrape)."""
        self.registry.register(_StageCollector(clock))

    def set_model(self, name: str, version: str) -> None:
        self.model.clear()
        self.model.labels(name=name, version=version).set(1)

    def follow(self, stats: Callable[[], Mapping[str, float]]) -> None:
        """Expose the model follower's registry and load figures (read at each scrape)."""
        self.registry.register(_FollowerCollector(stats))

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _WriterCollector(Collector):
    def __init__(self, health: Callable[[], WriterHealth]) -> None:
        self._health = health

    def collect(self) -> Iterator[Metric]:
        h = self._health()
        yield GaugeMetricFamily(
            "mlrig_log_writer_alive", "1 while the prediction log writer runs.", int(h.alive)
        )
        yield GaugeMetricFamily(
            "mlrig_log_queue_rows", "Prediction rows queued or being committed.", h.queued_rows
        )
        yield GaugeMetricFamily(
            "mlrig_log_queue_limit_rows", "Most rows the log queue holds.", h.max_queued_rows
        )
        yield CounterMetricFamily("mlrig_log_commits", "Group commits done.", h.commits)
        yield CounterMetricFamily(
            "mlrig_log_commit_failures", "Group commits the store refused.", h.commit_failures
        )
        shed = CounterMetricFamily(
            "mlrig_requests_shed",
            "Prediction requests answered 503 by the log: refused (queue full or writer down) "
            "or timed out waiting for their commit.",
            labels=["reason"],
        )
        shed.add_metric(["refused"], h.refused)
        shed.add_metric(["timeout"], h.timed_out)
        yield shed
        if h.spool is not None:
            s = h.spool
            yield GaugeMetricFamily(
                "mlrig_spool_batches",
                "Prediction log batches in the local spool, waiting for the store.",
                s.batches,
            )
            yield GaugeMetricFamily(
                "mlrig_spool_rows", "Prediction rows in the local spool.", s.rows
            )
            yield GaugeMetricFamily(
                "mlrig_spool_quarantined_batches",
                "Damaged or refused spool records set aside (never replayed).",
                s.quarantined,
            )
            yield CounterMetricFamily(
                "mlrig_spool_replayed_batches",
                "Spooled batches this process moved into the store.",
                s.replayed_batches,
            )
            yield CounterMetricFamily(
                "mlrig_spool_written_batches",
                "Batches this process wrote to the spool (store unreachable or spool draining).",
                s.spooled_batches,
            )
            yield GaugeMetricFamily(
                "mlrig_spool_failing",
                "1 while the spool refuses writes (requests answered 503).",
                int(s.error is not None),
            )


class _StageCollector(Collector):
    def __init__(self, clock: StageClock) -> None:
        self._clock = clock

    def collect(self) -> Iterator[Metric]:
        family = SummaryMetricFamily(
            "mlrig_request_stage_seconds",
            "Time prediction requests spent in each stage of the hot path: parse, turn "
            "(waiting for the micro-batch), predict, handoff (to the log writer thread), "
            "commit (insert + fsync), wake (back on the event loop), answer. A stage shared "
            "by a group of requests counts once per request.",
            labels=["stage"],
        )
        for stage, (count, seconds) in self._clock.snapshot().items():
            family.add_metric([stage], count, seconds)
        yield family


class _FollowerCollector(Collector):
    def __init__(self, stats: Callable[[], Mapping[str, float]]) -> None:
        self._stats = stats

    def collect(self) -> Iterator[Metric]:
        s = self._stats()
        yield CounterMetricFamily(
            "mlrig_registry_poll_failures", "Failed registry polls.", s["poll_failures"]
        )
        yield GaugeMetricFamily(
            "mlrig_registry_last_success_timestamp_seconds",
            "Unix time of the last registry answer (0 = none yet).",
            s["last_success"],
        )
        yield GaugeMetricFamily(
            "mlrig_registry_up", "1 when the last registry call succeeded.", s["registry_up"]
        )
        yield CounterMetricFamily(
            "mlrig_model_loads", "Model versions the server tried to load.", s["load_attempts"]
        )
        yield CounterMetricFamily(
            "mlrig_model_load_failures",
            "Versions refused or failing to load (the current one kept serving).",
            s["load_failures"],
        )
        yield GaugeMetricFamily(
            "mlrig_model_rejected_versions",
            "Versions the alias names that are not served.",
            s["rejected"],
        )
