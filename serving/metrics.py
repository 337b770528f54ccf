"""Prometheus metrics; multi-process aware (``nbo serve --workers N`` sets
``PROMETHEUS_MULTIPROC_DIR``, and ``/metrics`` then sums every worker)."""

from __future__ import annotations

import math
import os
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

__all__ = [
    "CONTENT_TYPE_LATEST",
    "DECISIONS",
    "EVENTS",
    "LATENCY",
    "MODEL",
    "SCORE_PSI",
    "render",
    "show_drift",
]

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

SCORE_PSI = Gauge(
    "nbo_score_psi",
    "Population stability index of today's planned scores against the model's training "
    "distribution (nbo plan computes it; > NBO_MONITOR_MAX_PSI is a shift: run nbo monitor)",
    ["arm", "version", "score"],
    multiprocess_mode="livemostrecent",
)
_drift_shown: set[tuple[str, str, str]] = set()


def show_drift(drift: dict[str, Any]) -> None:
    """Set :data:`SCORE_PSI` from a plan manifest's ``drift`` (arm -> version, psi by score);
    series no longer served turn NaN (labels cannot be removed in multi-process mode)."""
    now: dict[tuple[str, str, str], float] = {}
    for arm, found in drift.items():
        for score, value in found.get("psi", {}).items():
            now[(arm, str(found.get("version")), score)] = float(value)
    for labels in _drift_shown - set(now):
        SCORE_PSI.labels(*labels).set(math.nan)
    for labels, value in now.items():
        SCORE_PSI.labels(*labels).set(value)
    _drift_shown.clear()
    _drift_shown.update(now)


def render() -> bytes:
    """The metrics page: this process's, or every worker's under multiprocess mode."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry)
    return generate_latest()
