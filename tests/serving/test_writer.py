"""Group commit: every submitted batch is stored and its future resolved after the commit."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from nbo.history import InteractionStore
from nbo.history.schema import decisions
from nbo.serving.writer import DecisionWriter


def _row(i: int) -> dict[str, Any]:
    return {"decision_id": f"d{i}", "member_id": i % 7, "offer_id": "o", "campaign_id": "c",
            "channel": "email", "decided_at": datetime(2024, 1, 1), "send_at": None, "rank": 1,
            "p_redeem": 0.1, "expected_value": 1.0, "expected_cost": 0.1, "propensity": 1.0,
            "explored": False, "track": "default", "arm": "champion", "model_version": "v",
            "reason": "r"}  # fmt: skip


@pytest.mark.parametrize("sync", [True, False])
def test_concurrent_submissions_are_all_stored_once(tmp_path: Path, sync: bool) -> None:
    with InteractionStore(f"sqlite:///{tmp_path / 'h.db'}") as store:
        writer = DecisionWriter(store, sync=sync)

        def submit(i: int) -> int:
            assignment = {
                "member_id": i % 7,
                "arm": "champion",
                "assigned_at": datetime(2024, 1, 1),
            }
            return writer.submit([_row(i), _row(i)], [assignment]).result(timeout=30)

        with ThreadPoolExecutor(8) as pool:
            assert sorted(pool.map(submit, range(400))) == [2] * 400
        writer.close()
        with store.engine.connect() as connection:
            assert connection.execute(select(func.count()).select_from(decisions)).scalar() == 400
        stopped = writer.submit([_row(999)], [])
        with pytest.raises(RuntimeError, match="stopped"):
            stopped.result(timeout=1)


def test_a_failed_commit_fails_every_waiting_request(tmp_path: Path) -> None:
    with InteractionStore(f"sqlite:///{tmp_path / 'h.db'}") as store:
        writer = DecisionWriter(store)
        bad = _row(1) | {"p_redeem": None}  # NOT NULL
        with pytest.raises(Exception, match="NOT NULL"):
            writer.submit([bad], []).result(timeout=30)
        assert writer.submit([_row(2)], []).result(timeout=30) == 1  # the writer goes on
        writer.close()
