"""A day's plan (``nbo plan``): the club scored once, every request of the day answered from it.

For a day ``D`` (history strictly before ``D``'s midnight, so nothing of the day itself leaks
in) and each model served (the champion, and a challenger if any): every member's scored
candidates (:mod:`nbo.pipelines.candidates`) and member context through
:func:`~nbo.decisioning.prepare.plan_static` for each channel into a
:class:`~nbo.decisioning.plan.Plan` with the exploration odds of the day; a cold-start template
for members the data does not know yet; every member's product recommendations. Then the
active offers and campaigns. The result (:class:`~nbo.plans.day.DayPlan`) is split by member
shard; :func:`nbo.plans.writer.write_day` writes it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime

import numpy as np
import polars as pl
from numpy.typing import NDArray

from nbo.data.io import ClubData
from nbo.decisioning.engine import OfferStats, exploration_odds
from nbo.decisioning.plan import Plan
from nbo.decisioning.policy import Policy
from nbo.decisioning.prepare import CANDIDATE_COLUMNS, MEMBER_COLUMNS, plan_static
from nbo.features.history import History
from nbo.history import InteractionStore
from nbo.pipelines.candidates import active_offers, build_candidates, build_members
from nbo.pipelines.decide import offer_stats
from nbo.plans.day import (
    COLD_MEMBER,
    MAX_RECOMMENDATIONS,
    ArmPlan,
    DayPlan,
    MemberRows,
    PlannedModel,
    select_members,
    split_by_shard,
)
from nbo.plans.shards import shard_count, shard_of
from nbo.tracking.bundle import Bundle

__all__ = [
    "COLD_INPUTS",
    "DayInputs",
    "cold_member",
    "cold_start_candidates",
    "day_offers",
    "known_members",
    "member_recommendations",
    "model_plan",
    "plan_day",
]

Stage = Callable[[str], None]
_RECOMMENDATION_COLUMNS = ("member_id", "rank", "product_id", "score", "reason", "cold_start")
RECOMMEND_CHUNK = 25_000
"""Members recommended for at once: the ranker's candidate features of 100,000 members at once
took 3 GiB more than of 25,000 (each member's products do not depend on the others)."""
COLD_INPUTS = (
    "offer_id", "is_new", "p_redeem", "p_buy", "uplift", "uplift_measured", "value", "cost",
    "campaign_id", "category", "product", "start_date", "end_date",
)  # fmt: skip
"""The candidate columns :func:`cold_start_candidates` reads."""


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


def cold_member() -> pl.DataFrame:
    """The member row of the cold-start template (:data:`~nbo.plans.day.COLD_MEMBER`)."""
    row = {"member_id": COLD_MEMBER, "baskets": 0, "yearly_value": 0.0, "lapsing": False,
           "cold_start": True, "next_visit_date": None, "preferred_hour": None}  # fmt: skip
    return pl.DataFrame([row], schema=MEMBER_COLUMNS)


def member_recommendations(
    bundle: Bundle, history: History, member_ids: NDArray[np.int64]
) -> MemberRows:
    """The product recommendations of ``member_ids`` (each member's own: no other member's)."""
    chunks = [
        bundle.affinity.recommend(history, member_ids[start : start + RECOMMEND_CHUNK],
                                  k=MAX_RECOMMENDATIONS).select(_RECOMMENDATION_COLUMNS)
        for start in range(0, max(member_ids.size, 1), RECOMMEND_CHUNK)
    ]  # fmt: skip
    return MemberRows.from_frame(pl.concat(chunks), coded=("reason",))


def model_plan(
    model: PlannedModel,
    bundle: Bundle,
    history: History,
    offers: pl.DataFrame,
    policy: Policy,
    stats: OfferStats,
    *,
    channels: Sequence[str],
    known: list[NDArray[np.int64]],
    cold_start_offers: int = 5,
    stage: Stage = lambda name: None,
) -> ArmPlan:
    """One model's plans for every channel and its recommendations, split by member shard
    (``known``: the members of each shard)."""
    midnight = history.as_of
    stage(f"{model.uri}: scoring candidates")
    candidates = build_candidates(history, bundle, offers, policy)
    members = build_members(history, bundle.timing, policy)
    candidates = pl.concat(
        [
            candidates.select([pl.col(c).cast(t) for c, t in CANDIDATE_COLUMNS.items()]),
            cold_start_candidates(candidates, cold_start_offers),
        ]
    )
    people = pl.concat(
        [members.select([pl.col(c).cast(t) for c, t in MEMBER_COLUMNS.items()]), cold_member()]
    )
    shards = len(known)
    plans: dict[str, list[Plan]] = {}
    cold: dict[str, Plan] = {}
    for channel in channels:
        stage(f"{model.uri}: {channel} plan")
        static = plan_static(candidates, people, policy, at=midnight, channel=channel).collect()
        odds = exploration_odds(static, stats, policy) if policy.exploration.share > 0 else None
        plan = Plan.build(static, day=midnight.date(), channel=channel, odds=odds)
        del static
        is_cold = plan.member_ids == COLD_MEMBER
        cold[channel] = select_members(plan, is_cold)
        plans[channel] = split_by_shard(select_members(plan, ~is_cold), shards)
    del candidates, people
    stage(f"{model.uri}: recommendations")
    recs = [member_recommendations(bundle, history, ids) for ids in known]
    cold_recs = member_recommendations(bundle, history, np.array([COLD_MEMBER], dtype=np.int64))
    return ArmPlan(model, plans, cold, recs, cold_recs)


def plan_day(
    club: ClubData,
    policy: Policy,
    store: InteractionStore | None,
    day: date,
    models: Mapping[str, tuple[PlannedModel, Bundle]],
    *,
    channels: Sequence[str] | None = None,
    shards: int | None = None,
    cold_start_offers: int = 5,
    stage: Stage = lambda name: None,
) -> DayPlan:
    """The day's plan for each arm's model (see the module docstring); ``channels`` default to
    the policy's, ``shards`` to one per :data:`~nbo.plans.shards.MEMBERS_PER_SHARD` members.
    ``store`` (optional) gives the exploration's offer statistics as of the day's midnight."""
    given = DayInputs.of(club, policy, store, day, channels, shards, stage)
    arms = {
        arm: model_plan(model, bundle, given.history, given.offers, policy, given.stats,
                        channels=given.channels, known=given.known,
                        cold_start_offers=cold_start_offers, stage=stage)
        for arm, (model, bundle) in models.items()
    }  # fmt: skip
    stage("offers and campaigns")
    info, campaigns = day_offers(club, given.offers, day)
    return DayPlan(
        day=day,
        shards=len(given.known),
        members=given.known,
        arms=arms,
        offers=info,
        campaigns=campaigns,
    )


@dataclass(frozen=True)
class DayInputs:
    """What planning a day starts from, whichever engine plans it."""

    channels: list[str]
    midnight: datetime  # history strictly before it
    history: History
    offers: pl.DataFrame  # the offers active at midnight
    known: list[NDArray[np.int64]]  # the members of each shard
    stats: OfferStats  # the exploration's offer statistics as of midnight

    @classmethod
    def of(
        cls,
        club: ClubData,
        policy: Policy,
        store: InteractionStore | None,
        day: date,
        channels: Sequence[str] | None,
        shards: int | None,
        stage: Stage,
    ) -> DayInputs:
        """``channels`` default to the policy's (each checked), ``shards`` as
        :func:`known_members`; ``store`` (optional) gives the offer statistics."""
        chosen = list(channels if channels is not None else policy.channels)
        for channel in chosen:
            policy.check_channel(channel)
        midnight = datetime.combine(day, datetime.min.time())
        stage("active offers")
        history = History.at(club, midnight)
        stats = store.contact_state(midnight) if store is not None else None
        return cls(
            channels=chosen,
            midnight=midnight,
            history=history,
            offers=active_offers(club, midnight),
            known=known_members(history, shards),
            stats=offer_stats(stats) if stats is not None else OfferStats.empty(),
        )


def known_members(history: History, shards: int | None = None) -> list[NDArray[np.int64]]:
    """The members the data knows, sorted, split by member shard (``shards`` default: one per
    :data:`~nbo.plans.shards.MEMBERS_PER_SHARD` members)."""
    member_ids = np.sort(
        history.members.select("member_id").collect()["member_id"].to_numpy().astype(np.int64)
    )
    count = shards if shards is not None else shard_count(member_ids.size)
    shard = shard_of(member_ids, count)
    return [member_ids[shard == s] for s in range(count)]


def day_offers(
    club: ClubData, offers: pl.DataFrame, day: date
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(what a response shows of each active offer, the campaigns active on ``day``)."""
    campaigns = club.campaigns.filter(
        (pl.col("start_date") <= day) & (pl.col("end_date") >= day)
    ).collect()
    info = offers.join(
        campaigns.select("campaign_id", "campaign_type"), on="campaign_id", how="left"
    ).select(
        "offer_id", "campaign_id", "campaign_type", "category", "product", "targeted",
        valid_from=pl.col("start_date"), valid_until=pl.col("end_date"),
    )  # fmt: skip
    return info, campaigns.sort("campaign_id")
