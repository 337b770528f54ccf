"""Experiment report: per-arm rates, and incremental redemptions and spend against the holdout."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime
from statistics import variance

import polars as pl
import pytest

from nbo.evaluation.experiment import ALL_CAMPAIGNS, Z95, difference_interval, incremental_report

T0 = datetime(2024, 4, 1)
LATER = datetime(2024, 4, 5)


def _assignments(champion: int, holdout: int) -> pl.DataFrame:
    arms = ["champion"] * champion + ["holdout"] * holdout
    return pl.DataFrame(
        {"member_id": list(range(len(arms))), "arm": arms, "assigned_at": [T0] * len(arms)}
    )


def _redemptions(rows: Sequence[tuple[int, str | None, datetime, float]]) -> pl.DataFrame:
    return pl.DataFrame(
        rows,
        schema={"member_id": pl.Int64, "campaign_id": pl.String, "ts": pl.Datetime("us"),
                "amount": pl.Float64},
        orient="row",
    )  # fmt: skip


def test_incremental_per_member_against_the_holdout() -> None:
    # champion: members 0-3; holdout: members 4-7
    assignments = _assignments(4, 4)
    redemptions = _redemptions(
        [
            (0, "A", LATER, 1.0),
            (0, "A", LATER, 1.0),
            (1, "A", LATER, 2.0),
            (2, "B", LATER, 0.5),
            (4, "A", LATER, 1.0),
            (5, None, LATER, 3.0),  # campaign unknown: in the "all" rows only
            (3, "A", datetime(2024, 3, 1), 9.0),  # before the assignment: not counted
        ]
    )
    report = incremental_report(assignments, redemptions)
    assert report["arm"].to_list() == ["champion"] * 3
    assert report["campaign_id"].to_list() == ["A", "B", ALL_CAMPAIGNS]
    a = report.row(0, named=True)
    # champion A: 2, 1, 0, 0 per member (mean 0.75); holdout A: 1, 0, 0, 0 (mean 0.25)
    assert a["members"] == 4
    assert a["redemptions_per_member"] == pytest.approx(0.75)
    assert a["incremental_redemptions"] == pytest.approx(0.5)
    half = Z95 * math.sqrt((variance([2, 1, 0, 0]) + variance([1, 0, 0, 0])) / 4)
    assert a["redemptions_low"] == pytest.approx(0.5 - half)
    assert a["redemptions_high"] == pytest.approx(0.5 + half)
    # spend A: champion 2, 2, 0, 0 (mean 1); holdout 1, 0, 0, 0 (mean 0.25)
    assert a["incremental_spend"] == pytest.approx(0.75)
    b = report.row(1, named=True)
    assert b["incremental_redemptions"] == pytest.approx(0.25)  # no holdout redemptions of B
    everything = report.row(2, named=True)
    # all campaigns: champion 2, 1, 1, 0 (mean 1); holdout 1, 1, 0, 0 (mean 0.5)
    assert everything["incremental_redemptions"] == pytest.approx(0.5)
    assert everything["incremental_spend"] == pytest.approx((4.5 - 4.0) / 4)


def test_equal_arms_have_no_effect_and_an_interval_around_zero() -> None:
    assignments = _assignments(100, 100)
    rows = [(m, "A", LATER, 1.0) for m in range(200) if m % 4 == 0]
    report = incremental_report(assignments, _redemptions(rows))
    row = report.filter(pl.col("campaign_id") == "A").row(0, named=True)
    assert row["incremental_redemptions"] == pytest.approx(0.0)
    assert row["redemptions_low"] < 0 < row["redemptions_high"]
    assert row["spend_low"] < 0 < row["spend_high"]


def test_no_holdout_means_no_rows() -> None:
    report = incremental_report(_assignments(3, 0), _redemptions([(0, "A", LATER, 1.0)]))
    assert report.height == 0
    assert "incremental_redemptions" in report.columns


def test_difference_interval_is_newcombes() -> None:
    # Newcombe (1998), Statistics in Medicine 17, table II, example (a): 56/70 - 48/80,
    # method 10 (hybrid score): 0.0524 to 0.3339
    low, high = difference_interval(56, 70, 48, 80)
    assert (round(low, 4), round(high, 4)) == (0.0524, 0.3339)
