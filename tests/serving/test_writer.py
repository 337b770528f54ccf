"""Group commit: every request's rows are stored, each answered after the commit."""

from __future__ import annotations

import asyncio
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from nbo.history import InteractionStore
from nbo.history.schema import assignments, decisions
from nbo.serving.writer import DecisionWriter


def _row(i: int) -> dict[str, Any]:
    return {"decision_id": f"d{i}", "member_id": i % 7, "offer_id": "o", "campaign_id": "c",
            "channel": "email", "decided_at": datetime(2024, 1, 1), "send_at": None, "rank": 1,
            "p_redeem": 0.1, "expected_value": 1.0, "expected_cost": 0.1, "propensity": 1.0,
            "explored": False, "track": "default", "arm": "champion", "model_version": "v",
            "reason": "r"}  # fmt: skip


def _count(store: InteractionStore, table: Any) -> int:
    with store.engine.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(table)).scalar() or 0)


@pytest.mark.parametrize("sync", [True, False])
def test_concurrent_requests_are_all_stored_once_in_few_commits(
    tmp_path: Path, sync: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    with InteractionStore(f"sqlite:///{tmp_path / 'h.db'}") as store:
        commits: list[int] = []
        original = store.record_online

        def counted(rows: Any, *args: Any, **kwargs: Any) -> int:
            commits.append(len(rows))
            return original(rows, *args, **kwargs)

        monkeypatch.setattr(store, "record_online", counted)

        async def main() -> list[int]:
            writer = DecisionWriter(store, sync=sync)
            assignment = {"arm": "champion", "assigned_at": datetime(2024, 1, 1)}
            answers = await asyncio.gather(
                *(
                    writer.record([_row(i), _row(i)], [assignment | {"member_id": i % 7}])
                    for i in range(400)
                )
            )
            await writer.aclose()
            with pytest.raises(RuntimeError, match="stopped"):
                await writer.record([_row(999)], [])
            return list(answers)

        assert asyncio.run(main()) == [2] * 400
        assert _count(store, decisions) == 400 and _count(store, assignments) == 7
        assert sum(commits) == 800 and len(commits) < 400  # batched, not one commit each


def test_a_failed_commit_fails_every_waiting_request_and_the_writer_goes_on(
    tmp_path: Path,
) -> None:
    with InteractionStore(f"sqlite:///{tmp_path / 'h.db'}") as store:

        async def main() -> None:
            writer = DecisionWriter(store)
            bad = _row(1) | {"p_redeem": None}  # NOT NULL
            with pytest.raises(Exception, match="NOT NULL"):
                await writer.record([bad], [])
            assert await writer.record([_row(2)], []) == 1
            await writer.aclose()

        asyncio.run(main())
        assert _count(store, decisions) == 1
