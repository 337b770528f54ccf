"""The real Complete Journey data, imported end to end into the contract."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from nbo.data.completejourney import import_completejourney, source_tables
from nbo.data.describe import describe
from nbo.data.io import ClubData
from nbo.data.report import ImportReport
from nbo.data.validate import validate_dataset

pytestmark = pytest.mark.slow

Imported = tuple[Path, ImportReport]


@pytest.fixture(scope="module")
def cj(tmp_path_factory: pytest.TempPathFactory) -> Imported:
    out = tmp_path_factory.mktemp("cj") / "completejourney"
    report = import_completejourney(out)
    return out, report


def test_import_sizes(cj: Imported) -> None:
    club = ClubData(cj[0])
    summary = describe(club)
    assert summary.active_members == 2469
    assert 1_400_000 < summary.lines < 1_470_000
    assert summary.campaigns == 27
    assert 2_000 < summary.redemptions <= 2_102
    assert summary.first_ts is not None and summary.first_ts.year == 2017


def test_import_is_valid(cj: Imported) -> None:
    report = validate_dataset(cj[0])
    assert report.ok, report.render()


def test_every_excluded_row_is_accounted_for(cj: Imported) -> None:
    report = cj[1]
    raw = source_tables()
    excluded = sum(
        n.rows for n in report.notes if n.table == "transactions" and n.action == "excluded"
    )
    assert excluded > 0
    assert report.rows["transactions"] + excluded == raw["transactions"].height
    reasons = " ".join(n.reason for n in report.notes)
    assert "quantity 0" in reasons and "several campaigns" in reasons


def test_coupon_in_several_campaigns_is_one_offer_per_campaign(cj: Imported) -> None:
    club = ClubData(cj[0])
    offers = club.offers.collect()
    per_code = offers.group_by("coupon_code").agg(pl.col("campaign_id").n_unique())
    assert per_code.filter(pl.col("campaign_id") > 1).height > 100
    assert offers["offer_id"].is_unique().all()
    # every redemption points at an offer of the campaign it was redeemed in
    red = club.redemptions.join(club.offers, on="offer_id").collect()
    assert red.height == club.redemptions.collect().height
