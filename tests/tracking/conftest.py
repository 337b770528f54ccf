"""Fixtures of the tracking tests: a bundle of the synthetic club and a temporary MLflow store."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import mlflow
import pytest

from nbo.data.io import ClubData
from nbo.pipelines.train import train_bundle
from nbo.tracking.bundle import Bundle
from nbo.tracking.registry import configure

AS_OF = datetime(2024, 4, 1)


@pytest.fixture(scope="module")
def bundle(synth_club: Path) -> Bundle:
    """Trained once per module (tests may change its ``as_of`` before logging it)."""
    return train_bundle(ClubData(synth_club), AS_OF)


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An empty MLflow store under ``tmp_path`` for one test."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    configure(tmp_path)
    yield tmp_path
    mlflow.set_tracking_uri(None)
