"""Prometheus metrics; multi-process aware (``nbo serve --workers N`` sets
``PROMETHEUS_MULTIPROC_DIR``, and ``/metrics`` then sums every worker)."""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

__all__ = ["CONTENT_TYPE_LATEST", "DECISIONS", "EVENTS", "LATENCY", "MODEL", "render"]

LATENCY = Histogram(
    "nbo_request_seconds",
    "Request latency by route",
    ["method", "route", "status"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0),
)
DECISIONS = Counter("nbo_decisions", "Offers decided, by offer and arm", ["offer_id", "arm"])
EVENTS = Counter("nbo_events", "Events received, by type (new ones only)", ["event_type"])
MODEL = Gauge(
    "nbo_model_loaded",
    "1 for the model each arm serves",
    ["arm", "uri", "version"],
    multiprocess_mode="liveall",
)


def render() -> bytes:
    """The metrics page: this process's, or every worker's under multiprocess mode."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry)
    return generate_latest()
