"""The decision back-test on real Complete Journey data (slow; runs in CI)."""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl
import pytest

from nbo.data.completejourney import import_completejourney
from nbo.data.io import ClubData
from nbo.decisioning.policy import Policy
from nbo.features.history import History
from nbo.models.purchase import OfferPurchase
from nbo.models.response import OfferResponse
from nbo.models.timing import VisitTiming
from nbo.models.uplift import OfferUplift
from nbo.pipelines.decision_backtest import decision_backtest

AS_OF = "2017-09-04"


@dataclass(frozen=True)
class _Models:
    response: OfferResponse
    purchase: OfferPurchase
    uplift: OfferUplift


@pytest.mark.slow
def test_decided_offers_beat_the_clubs_own_targeting(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    root = tmp_path_factory.mktemp("cj") / "completejourney"
    import_completejourney(root)
    club = ClubData(root)
    history = History.at(club, AS_OF)
    models = _Models(
        OfferResponse().fit(history), OfferPurchase().fit(history), OfferUplift().fit(history)
    )
    timing = VisitTiming().fit(history)
    policy = Policy().with_objective("redemptions")
    table = decision_backtest(club, models, timing, policy, AS_OF, window_days=60)
    # campaigns 14-18 start in the 60 days after 2017-09-04
    assert table["campaign_id"].to_list() == ["14", "15", "16", "17", "18"]
    # same members, same campaigns: nbo's three offers per member are redeemed far more often
    # than the club's "every coupon to every audience member"
    totals = table.select(pl.col("club_redeemed", "club_pairs", "decided_redeemed",
                                 "decided_pairs").sum()).row(0, named=True)  # fmt: skip
    club_rate = totals["club_redeemed"] / totals["club_pairs"]
    decided_rate = totals["decided_redeemed"] / totals["decided_pairs"]
    assert decided_rate >= 3 * club_rate
    # and never worse on a campaign with a real number of redemptions
    big = table.filter(pl.col("club_redeemed") >= 20)
    assert big.height >= 3
    assert (big["lift"] >= 1.0).all()
    # every decided member was in the campaign's audience
    assert (table["decided_pairs"] <= table["audience"] * Policy().slots).all()
