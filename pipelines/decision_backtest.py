"""Back-test of decisions against the club's own targeting: same campaigns, same members.

A pipeline, not an evaluation metric: it composes the candidate pipeline
(:mod:`nbo.pipelines.candidates`) with the decision engine at each campaign's start, and scores
the result on the club's redemptions.

For each campaign that starts in ``[as_of, as_of + window_days)``, the engine decides at the
campaign's start which of its coupons each member of its audience gets (features as of that
day, models trained before ``as_of``). The club historically gave every audience member every
coupon of the campaign. Both are scored on what members actually redeemed during the campaign:

* ``club_rate``     redeemed pairs / audience × coupons (the club's targeting);
* ``decided_rate``  redeemed pairs / decided pairs (nbo's lists, ``policy.slots`` per member);
* ``lift``          decided_rate / club_rate;
* ``captured``      the share of all the campaign's redemptions that nbo's short lists cover.

Redemptions are what this back-test can see in the club's data, so it compares like with like
under the ``redemptions`` objective (``policy.with_objective("redemptions")``); the default
objective (incremental margin) is scored against known counterfactuals in
``benchmarks/incremental.py``.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

import polars as pl

from nbo.data.io import ClubData
from nbo.decisioning.engine import decide
from nbo.decisioning.policy import Policy
from nbo.features.history import History, as_datetime
from nbo.models.response import audience_pairs
from nbo.models.timing import VisitTiming
from nbo.pipelines.candidates import (
    OfferScorers,
    active_offers,
    build_candidates,
    build_members,
)

__all__ = ["decision_backtest"]

_KEYS = ["member_id", "offer_id"]


def _redeemed(club: ClubData, first_day: date, last_day: date) -> pl.DataFrame:
    """(member, offer) pairs redeemed from ``first_day`` to ``last_day`` inclusive."""
    start = datetime.combine(first_day, datetime.min.time())
    end = datetime.combine(last_day, datetime.min.time()) + timedelta(days=1)
    return (
        club.redemptions.filter((pl.col("ts") >= start) & (pl.col("ts") < end))
        .select(_KEYS)
        .unique()
        .collect()
    )


def decision_backtest(
    club: ClubData,
    models: OfferScorers,
    timing: VisitTiming,
    policy: Policy,
    as_of: date | datetime | str,
    *,
    window_days: int = 28,
    channel: str = "email",
) -> pl.DataFrame:
    """One row per campaign starting in the window (see the module docstring)."""
    start = as_datetime(as_of)
    # the back-test measures the model's choices: no exploration, no frequency caps from
    # earlier decisions (there are none in the club's data)
    policy = policy.model_copy(
        update={"exploration": policy.exploration.model_copy(update={"share": 0.0})}
    )
    campaigns = (
        club.campaigns.filter(
            (pl.col("start_date") >= start.date())
            & (pl.col("start_date") < (start + timedelta(days=window_days)).date())
        )
        .sort("start_date", "campaign_id")
        .collect()
    )
    rows = []
    for campaign in campaigns.iter_rows(named=True):
        at = datetime.combine(campaign["start_date"], datetime.min.time())
        history = History.at(club, at)
        offers = active_offers(club, at, campaign["campaign_id"])
        candidates = build_candidates(history, models, offers, policy)
        members = build_members(history, timing, policy)
        decided = decide(candidates, members, policy, at=at, channel=channel).decisions
        redeemed = _redeemed(club, campaign["start_date"], campaign["end_date"])
        one = club.campaigns.filter(pl.col("campaign_id") == campaign["campaign_id"])
        pairs = audience_pairs(one, club.campaign_audience, club.offers, club.members).collect()
        club_hits = pairs.join(redeemed, on=_KEYS, how="inner").height
        decided_hits = decided.join(redeemed, on=_KEYS, how="inner").height
        club_rate = club_hits / pairs.height if pairs.height else float("nan")
        decided_rate = decided_hits / decided.height if decided.height else float("nan")
        rows.append(
            {
                "campaign_id": campaign["campaign_id"],
                "start_date": campaign["start_date"],
                "audience": pairs["member_id"].n_unique(),
                "coupons": offers.height,
                "club_pairs": pairs.height,
                "club_redeemed": club_hits,
                "club_rate": club_rate,
                "decided_pairs": decided.height,
                "decided_redeemed": decided_hits,
                "decided_rate": decided_rate,
                "lift": decided_rate / club_rate if club_rate else float("nan"),
                "captured": decided_hits / club_hits if club_hits else float("nan"),
            }
        )
    return pl.DataFrame(rows)
