"""What one model knows for one day, computed once and kept for every request of that day.

For a day ``D`` (history strictly before ``D``'s midnight, so nothing of the day itself leaks
in) and a bundle: the scored candidates and member context of every member, run through
``plan_static`` for each channel into an online :class:`~nbo.decisioning.online.Plan`; a
cold-start template for members the data does not know yet; the active offers and campaigns;
and every member's product recommendations.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

import numpy as np
import polars as pl

from nbo.data.io import ClubData
from nbo.decisioning.engine import exploration_odds
from nbo.decisioning.plan import Plan
from nbo.decisioning.policy import Policy
from nbo.decisioning.prepare import CANDIDATE_COLUMNS, MEMBER_COLUMNS, plan_static
from nbo.features.history import History
from nbo.history import InteractionStore
from nbo.pipelines.candidates import active_offers, build_candidates, build_members
from nbo.pipelines.decide import offer_stats
from nbo.tracking.bundle import Bundle

__all__ = ["COLD_MEMBER", "MAX_RECOMMENDATIONS", "DayPlans", "build_day", "cold_start_candidates"]

COLD_MEMBER = -1
"""The plan's member id for the cold-start template (member ids in requests are ≥ 0)."""
MAX_RECOMMENDATIONS = 50


@dataclass(frozen=True)
class DayPlans:
    """Everything a request on ``day`` needs from one model."""

    day: date
    plans: dict[str, Plan]  # by channel
    known_members: frozenset[int]
    offers: pl.DataFrame  # active_offers(...) with campaign_type
    campaigns: pl.DataFrame  # campaigns active on the day
    recommendations: dict[int, list[dict[str, object]]]  # member -> ranked products
    cold_recommendations: list[dict[str, object]]
    offer_info: dict[str, dict[str, object]]  # offer_id -> what a response shows of it


def cold_start_candidates(candidates: pl.DataFrame, offers: int) -> pl.DataFrame:
    """Candidate rows for a member unknown to the data: the ``offers`` most widely relevant
    active offers (most members with a related purchase), in no audience check, scored with
    the offer's mean p_redeem, p_buy and uplift over members new to its products (all members
    if none)."""
    if offers <= 0 or candidates.is_empty():
        return candidates.clear().select(list(CANDIDATE_COLUMNS))
    new = pl.col("is_new")
    return (
        candidates.group_by("offer_id")
        .agg(
            *(
                pl.when(new.any()).then(pl.col(name).filter(new).mean())
                .otherwise(pl.col(name).mean()).alias(name)
                for name in ("p_redeem", "p_buy", "uplift")
            ),
            reach=pl.len(),
            uplift_measured=pl.col("uplift_measured").all(),
            value=pl.when(new.any()).then(pl.col("value").filter(new).median())
            .otherwise(pl.col("value").median()),
            cost=pl.col("cost").first(),
            campaign_id=pl.col("campaign_id").first(),
            category=pl.col("category").first(),
            product=pl.col("product").first(),
            start_date=pl.col("start_date").first(),
            end_date=pl.col("end_date").first(),
        )
        .sort(["reach", "offer_id"], descending=[True, False])
        .head(offers)
        .with_columns(
            member_id=pl.lit(COLD_MEMBER, pl.Int64),
            in_audience=pl.lit(True),
            is_new=pl.lit(True),
            redeemed_before=pl.lit(False),
            bought_baskets=pl.lit(0, pl.Int64),
            days_since_bought=pl.lit(None, pl.Float64),
            usual_gap_days=pl.lit(None, pl.Float64),
        )
        .select([pl.col(c).cast(t) for c, t in CANDIDATE_COLUMNS.items()])
    )  # fmt: skip


def _cold_member() -> pl.DataFrame:
    row = {"member_id": COLD_MEMBER, "baskets": 0, "yearly_value": 0.0, "lapsing": False,
           "cold_start": True, "next_visit_date": None, "preferred_hour": None}  # fmt: skip
    return pl.DataFrame([row], schema=MEMBER_COLUMNS)


def _recommendations(
    bundle: Bundle, history: History, members: pl.Series
) -> tuple[dict[int, list[dict[str, object]]], list[dict[str, object]]]:
    ids = np.r_[members.to_numpy(), COLD_MEMBER].astype(np.int64)
    recs = bundle.affinity.recommend(history, ids, k=MAX_RECOMMENDATIONS)
    by_member: dict[int, list[dict[str, object]]] = {}
    columns = ("rank", "product_id", "score", "reason", "cold_start")
    for member_id, rank, product_id, score, reason, cold in recs.select(
        "member_id", *columns
    ).iter_rows():
        row = dict(zip(columns, (rank, product_id, score, reason, cold), strict=True))
        by_member.setdefault(int(member_id), []).append(row)
    cold_rows = by_member.pop(COLD_MEMBER, [])
    return by_member, cold_rows


def build_day(
    bundle: Bundle,
    club: ClubData,
    policy: Policy,
    store: InteractionStore,
    day: date,
    *,
    cold_start_offers: int = 5,
) -> DayPlans:
    """The day's plans for every channel of ``policy``; see the module docstring."""
    midnight = datetime.combine(day, datetime.min.time())
    history = History.at(club, midnight)
    offers = active_offers(club, midnight)
    candidates = build_candidates(history, bundle, offers, policy)
    members = build_members(history, bundle.timing, policy)
    candidates = pl.concat(
        [
            candidates.select([pl.col(c).cast(t) for c, t in CANDIDATE_COLUMNS.items()]),
            cold_start_candidates(candidates, cold_start_offers),
        ]
    )
    people = pl.concat(
        [members.select([pl.col(c).cast(t) for c, t in MEMBER_COLUMNS.items()]), _cold_member()]
    )
    stats = offer_stats(store.contact_state(midnight))
    plans: dict[str, Plan] = {}
    for channel in policy.channels:
        static = plan_static(candidates, people, policy, at=midnight, channel=channel).collect()
        odds = exploration_odds(static, stats, policy) if policy.exploration.share > 0 else None
        plans[channel] = Plan.build(static, day=day, channel=channel, odds=odds)
    campaigns = club.campaigns.filter(
        (pl.col("start_date") <= day) & (pl.col("end_date") >= day)
    ).collect()
    offer_rows = offers.join(
        campaigns.select("campaign_id", "campaign_type"), on="campaign_id", how="left"
    )
    recs, cold_recs = _recommendations(bundle, history, members["member_id"])
    info = offer_rows.select(
        "offer_id", "campaign_id", "campaign_type", "category", "product", "targeted",
        valid_from=pl.col("start_date"), valid_until=pl.col("end_date"),
    )  # fmt: skip
    return DayPlans(
        day=day,
        plans=plans,
        known_members=frozenset(int(m) for m in members["member_id"]),
        offers=offer_rows,
        campaigns=campaigns.sort("campaign_id"),
        recommendations=recs,
        cold_recommendations=cold_recs,
        offer_info={str(row["offer_id"]): row for row in info.iter_rows(named=True)},
    )
