"""Prometheus counters and latency of the gRPC door, by method and status code."""

from __future__ import annotations

import functools

from prometheus_client import CollectorRegistry, Counter, Histogram

from mangahub.metrics import PROCESS_REGISTRY


class GrpcMetrics:
    """Calls by method and code, and their latency by method."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "mangahub_grpc_requests_total",
            "gRPC calls",
            ["method", "code"],
            registry=registry,
        )
        self.latency = Histogram(
            "mangahub_grpc_request_seconds",
            "gRPC call latency",
            ["method"],
            registry=registry,
        )

    @staticmethod
    @functools.cache
    def for_process() -> GrpcMetrics:
        """The process-wide set, in :data:`~mangahub.metrics.PROCESS_REGISTRY`: served at
        the HTTP door's ``/metrics`` or, in a part without it, on ``metrics_port``."""
        return GrpcMetrics(PROCESS_REGISTRY)

    def observe(self, method: str, code: str, seconds: float) -> None:
        self.requests.labels(method, code).inc()
        self.latency.labels(method).observe(seconds)
