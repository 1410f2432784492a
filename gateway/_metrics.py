"""The gateway's Prometheus metrics, in a registry of its own (the core's are served by `ledger serve`)."""

from __future__ import annotations

from typing import Any, Final

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

LATENCY_BUCKETS_SECONDS: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)


class HttpMetrics:
    """Requests by method, route template and status, and their latency."""

    content_type: Final = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "gateway_http_requests", "HTTP requests answered, by method, route template and status",
            ["method", "route", "status"], registry=self.registry,
        )  # fmt: skip
        self.latency = Histogram(
            "gateway_http_request_seconds", "Time from a request's arrival to its answer, by method and route",
            ["method", "route"], buckets=LATENCY_BUCKETS_SECONDS, registry=self.registry,
        )  # fmt: skip

        self.webhook_attempts = Counter(
            "gateway_webhook_attempts", "Webhook delivery attempts, by outcome (delivered, retrying, failed)",
            ["outcome"], registry=self.registry,
        )  # fmt: skip
        self.webhook_latency = Histogram(
            "gateway_webhook_attempt_seconds", "Time from sending a webhook to its receiver's answer",
            buckets=LATENCY_BUCKETS_SECONDS, registry=self.registry,
        )  # fmt: skip
        self.webhook_events = Counter(
            "gateway_webhook_events", "Deliveries recorded from the event feeds (one per endpoint and event)",
            registry=self.registry,
        )  # fmt: skip
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        """(method, route template, status) -> its request counter and latency histogram: bounded as the labels
        are (templates, never raw paths)."""

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        children = self._children.get((method, route, status))
        if children is None:  # labels() costs more than the rest of the observation: each set is looked up once
            children = self._children[(method, route, status)] = (
                self.requests.labels(method, route, str(status)), self.latency.labels(method, route)
            )  # fmt: skip
        children[0].inc()
        children[1].observe(seconds)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
