"""The service's drift gauge: the PSI of the day plan's scores against the model's training
distribution, computed by ``nbo plan`` into the manifest and shown as ``nbo_score_psi``."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY

from nbo.evaluation.monitor import psi
from nbo.evaluation.reference import references_of
from nbo.plans import read_day, read_manifest
from nbo.serving.metrics import show_drift
from nbo.tracking.registry import configure, load_bundle
from tests.serving.conftest import ADMIN, TODAY


def _gauge(arm: str, version: str, score: str) -> float | None:
    return REGISTRY.get_sample_value(
        "nbo_score_psi", {"arm": arm, "version": version, "score": score}
    )


def test_plan_records_the_drift_of_its_scores_and_metrics_show_it(
    client: TestClient, plan_dir: Path, registry: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", registry)
    configure()
    bundle = load_bundle("models:/nbo@champion")
    references = references_of(bundle.reference)
    plan = read_day(plan_dir, TODAY)
    rows = plan.arms["champion"].plans["email"]
    drift = read_manifest(plan_dir, TODAY)["drift"]  # type: ignore[index]
    assert drift["champion"]["version"] == bundle.version
    for score in ("p_redeem", "p_buy"):
        expected = psi(references[score], np.concatenate([p.columns[score] for p in rows]))
        assert drift["champion"]["psi"][score] == pytest.approx(expected)
        assert _gauge("champion", bundle.version, score) == pytest.approx(expected)
    text = client.get("/v1/metrics", headers=ADMIN).text
    assert f'nbo_score_psi{{arm="champion",score="p_redeem",version="{bundle.version}"}}' in text


def test_series_no_longer_served_turn_nan() -> None:
    show_drift({"champion": {"version": "old", "psi": {"p_redeem": 0.3}}})
    assert _gauge("champion", "old", "p_redeem") == pytest.approx(0.3)
    show_drift({"champion": {"version": "new", "psi": {"p_redeem": 0.05}}})
    assert math.isnan(_gauge("champion", "old", "p_redeem") or 0.0)
    assert _gauge("champion", "new", "p_redeem") == pytest.approx(0.05)
