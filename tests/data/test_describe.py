"""The dataset description."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from nbo.data.describe import describe
from nbo.data.io import ClubData


def test_describe_tiny_club(tiny_club: Path) -> None:
    summary = describe(ClubData(tiny_club))
    assert (summary.members, summary.active_members, summary.lines, summary.baskets) == (3, 3, 5, 4)
    assert summary.baskets_per_member == 4 / 3
    assert summary.lines_per_basket == 5 / 4
    assert summary.first_ts == datetime(2024, 3, 4, 10, 0)
    assert summary.last_ts == datetime(2024, 3, 11, 10, 5)
    assert summary.sales_value == 1.5 + 4.0 + 1.5 + 3.2 + 2.0
    # two audience pairs (C1, 1) and (C1, 2); member 1 redeemed
    assert (summary.campaigns, summary.offers, summary.audience) == (1, 2, 2)
    assert summary.redemption_rate == 0.5
    labels = [label for label, _ in summary.rows()]
    assert "redemption rate (audience pairs that redeemed)" in labels
