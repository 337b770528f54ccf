"""The history store on each backend: a SQLite file and a scratch PostgreSQL database."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from nbo.history import InteractionStore

T0 = datetime(2024, 3, 4, 9, 0)


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A URL per backend; the SQLite file sits in a folder that does not exist yet."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'history' / 'nbo.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def store(store_url: str) -> Iterator[InteractionStore]:
    with InteractionStore(store_url) as opened:
        yield opened


def decision_frame(*rows: dict[str, Any]) -> pl.DataFrame:
    """Decisions with every required column filled in; ``rows`` override or add columns."""
    base: dict[str, Any] = {
        "member_id": 1,
        "offer_id": "C1-a",
        "channel": "email",
        "decided_at": T0,
        "rank": 1,
        "p_redeem": 0.2,
        "expected_value": 1.5,
        "propensity": 0.9,
        "explored": False,
        "model_version": "v1",
    }
    full = [base | {"decision_id": f"d{i}"} | row for i, row in enumerate(rows)]
    return pl.DataFrame(full)


def event(
    event_id: str, event_type: str, hours: float, member_id: int = 1, offer_id: str = "C1-a"
) -> dict[str, Any]:
    """One event ``hours`` after T0."""
    return {
        "event_id": event_id,
        "event_type": event_type,
        "member_id": member_id,
        "offer_id": offer_id,
        "ts": T0 + timedelta(hours=hours),
    }
