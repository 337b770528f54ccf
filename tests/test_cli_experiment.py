"""`nbo experiment report` (arms and incremental impact) and `nbo experiment evaluate-policy`."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from nbo.cli import app
from nbo.cli.common import console
from nbo.history import InteractionStore

runner = CliRunner()


def _table_rows(output: str) -> list[list[str]]:
    return [
        [cell.strip() for cell in line.split("│")[1:-1]]
        for line in output.splitlines()
        if line.count("│") > 5
    ]


def test_report_prints_incremental_impact_per_campaign(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(console, "width", 80)
    url = f"sqlite:///{tmp_path / 'h.db'}"
    t0 = datetime(2024, 4, 1, 9)
    arms = {m: "holdout" if m < 10 else "champion" for m in range(30)}
    decided = pl.DataFrame(
        {
            "decision_id": [f"d{m}" for m in range(10, 30)],
            "member_id": list(range(10, 30)),
            "offer_id": ["o1"] * 20,
            "campaign_id": ["C1"] * 20,
            "channel": ["app"] * 20,
            "decided_at": [t0] * 20,
            "rank": [1] * 20,
            "p_redeem": [0.1] * 20,
            "expected_value": [1.0] * 20,
            "propensity": [1.0] * 20,
            "explored": [False] * 20,
            "arm": ["champion"] * 20,
            "model_version": ["1"] * 20,
        }
    )
    with InteractionStore(url) as store:
        store.record_decisions(decided)
        store.record_online(
            [], [{"member_id": m, "arm": arm, "assigned_at": t0} for m, arm in arms.items()]
        )
        # holdout: 1 of 10 redeems o1 (0.1 per member); champion: 6 of 20 (0.3 per member)
        store.record_events(
            [{"event_id": f"e{m}", "event_type": "redemption", "member_id": m, "offer_id": "o1",
              "ts": datetime(2024, 4, 2), "amount": 2.0} for m in (1, *range(10, 16))]
        )  # fmt: skip
    result = runner.invoke(app, ["experiment", "report", "--database-url", url])
    assert result.exit_code == 0, result.output
    assert "Incremental per member vs holdout" in result.output
    rows = {(row[0], row[1]): row for row in _table_rows(result.output) if len(row) == 6}
    assert rows[("C1", "champion")][2] == "+0.2000"
    assert rows[("C1", "champion")][4] == "+0.400"  # 0.3 * 2.0 - 0.1 * 2.0
    assert rows[("all", "champion")][2] == "+0.2000"
    low, high = rows[("C1", "champion")][3].split("–")
    assert float(low) < 0.2 < float(high)


def test_report_without_a_holdout_says_so(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'h.db'}"
    with InteractionStore(url) as store:
        store.record_online([], [{"member_id": 1, "arm": "champion",
                                  "assigned_at": datetime(2024, 4, 1)}])  # fmt: skip
    result = runner.invoke(app, ["experiment", "report", "--database-url", url])
    assert result.exit_code == 0, result.output
    assert "no holdout members" in result.output
