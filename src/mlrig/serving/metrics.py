"""Prometheus metrics of one server process (its own registry: no module-level state)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

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

    def set_model(self, name: str, version: str) -> None:
        self.model.clear()
        self.model.labels(name=name, version=version).set(1)

    def render(self) -> bytes:
        return generate_latest(self.registry)
