"""From scored candidates to arbitration rows: eligibility, contact policy, tracks, economics.

Input frames (see :data:`CANDIDATE_COLUMNS` and :data:`MEMBER_COLUMNS`) are built by the batch
job or the API from the models; contact history comes from the interaction store. Everything
here is a pure polars expression over them, so one member (an API call) and a million (a batch
run) go through the same rules.

Priority (``docs/decisioning.md``)::

    expected_cost     = p_redeem × cost + contact_cost[channel]
    expected_value    = p_redeem × value − expected_cost
    incremental_value = uplift × value − expected_cost
    priority          = weight × track_multiplier × gain − expected_cost + boost

``value`` is what a purchase of the offer's products is worth to the club (margin on the
member's typical spend on them), ``cost`` what a redemption costs the club (the club-funded part
of the discount; everyone who redeems is paid, including members who would have bought anyway);
``uplift`` is P(buy | offer) − P(buy | no offer). ``gain`` is the policy's objective:
``uplift × value`` (incremental margin, the default), ``p_redeem × value`` (revenue) or
``p_redeem`` (redemptions; no cost term). ``weight`` is the campaign's weight times the
offer's, ``boost`` their sum.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
import polars as pl

from nbo.decisioning.contacts import ContactArrays, ContactHistory, contact_rules
from nbo.decisioning.policy import Objective, Policy

__all__ = [
    "CANDIDATE_COLUMNS",
    "MEMBER_COLUMNS",
    "ContactHistory",
    "plan_static",
    "prepare",
    "with_contacts",
]

CANDIDATE_COLUMNS: dict[str, pl.DataType] = {
    "member_id": pl.Int64(),
    "offer_id": pl.String(),
    "campaign_id": pl.String(),
    "category": pl.String(),
    "start_date": pl.Date(),
    "end_date": pl.Date(),
    "in_audience": pl.Boolean(),
    "p_redeem": pl.Float64(),
    "p_buy": pl.Float64(),
    "uplift": pl.Float64(),
    "uplift_measured": pl.Boolean(),
    "value": pl.Float64(),
    "cost": pl.Float64(),
    "is_new": pl.Boolean(),
    "redeemed_before": pl.Boolean(),
    "bought_baskets": pl.Int64(),
    "days_since_bought": pl.Float64(),
    "usual_gap_days": pl.Float64(),
    "product": pl.String(),
}
MEMBER_COLUMNS: dict[str, pl.DataType] = {
    "member_id": pl.Int64(),
    "baskets": pl.Int64(),
    "yearly_value": pl.Float64(),
    "lapsing": pl.Boolean(),
    "cold_start": pl.Boolean(),
    "next_visit_date": pl.Date(),
    "preferred_hour": pl.Int64(),
}


def _check(frame: pl.DataFrame, columns: dict[str, pl.DataType], name: str) -> pl.LazyFrame:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{name} frame lacks column(s) {missing}")
    casts = [pl.col(c) if frame.schema[c] == t else pl.col(c).cast(t) for c, t in columns.items()]
    return frame.lazy().select(casts)


def _rules(policy: Policy, channel: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    campaigns = pl.DataFrame(
        {
            "campaign_id": list(policy.campaigns),
            "c_weight": [r.weight for r in policy.campaigns.values()],
            "c_boost": [r.boost for r in policy.campaigns.values()],
            "c_channel_ok": [r.channels is None or channel in r.channels
                             for r in policy.campaigns.values()],
        },
        schema={"campaign_id": pl.String, "c_weight": pl.Float64, "c_boost": pl.Float64,
                "c_channel_ok": pl.Boolean},
    )  # fmt: skip
    offers = pl.DataFrame(
        {
            "offer_id": list(policy.offers),
            "o_weight": [r.weight for r in policy.offers.values()],
            "o_boost": [r.boost for r in policy.offers.values()],
        },
        schema={"offer_id": pl.String, "o_weight": pl.Float64, "o_boost": pl.Float64},
    )
    return campaigns, offers


def _static_rules(policy: Policy, at: datetime) -> pl.Expr:
    """Rules that need no interaction history."""
    day = at.date()
    rules = [
        pl.col("start_date") <= day,
        pl.col("end_date") >= day,
        pl.col("in_audience"),
        pl.col("c_channel_ok"),
        ~pl.col("member_id").is_in(policy.excluded_members),
        ~pl.col("offer_id").is_in(policy.excluded_offers),
        ~pl.col("redeemed_before"),
        pl.col("p_redeem").is_finite() & (pl.col("p_redeem") > 0),
        pl.col("uplift").is_finite(),
        pl.col("track_ok"),
    ]
    days = policy.contact.skip_recent_purchase_days
    if days > 0:
        rules.append(pl.col("days_since_bought").is_null() | (pl.col("days_since_bought") >= days))
    return pl.all_horizontal(rules)


def _gain(objective: Objective) -> pl.Expr:
    """What one decision earns under the policy's objective, before costs and levers."""
    if objective == "incremental_margin":
        return pl.col("uplift") * pl.col("value")
    if objective == "revenue":
        return pl.col("p_redeem") * pl.col("value")
    return pl.col("p_redeem")


def _track(policy: Policy) -> tuple[pl.Expr, pl.Expr, pl.Expr]:
    tracks = policy.tracks
    onboarding = pl.col("baskets") < tracks.onboarding_max_baskets
    winback = ~onboarding & pl.col("lapsing")
    track = (
        pl.when(onboarding).then(pl.lit("onboarding"))
        .when(winback).then(pl.lit("winback"))
        .otherwise(pl.lit("default"))
    )  # fmt: skip
    multiplier = (
        pl.when(onboarding).then(tracks.onboarding_multiplier)
        .when(winback).then(tracks.winback_multiplier)
        .otherwise(1.0)
    )  # fmt: skip
    allowed = pl.lit(True)
    if tracks.onboarding_campaigns:
        allowed &= ~onboarding | pl.col("campaign_id").is_in(tracks.onboarding_campaigns)
    if tracks.winback_campaigns:
        allowed &= ~winback | pl.col("campaign_id").is_in(tracks.winback_campaigns)
    return track, multiplier, allowed


def prepare(
    candidates: pl.DataFrame,
    members: pl.DataFrame,
    contacts: ContactHistory | None,
    policy: Policy,
    *,
    at: datetime,
    channel: str,
) -> pl.DataFrame:
    """The eligible rows with priority, expected value/cost, track, capacity and cost cap."""
    static = plan_static(candidates, members, policy, at=at, channel=channel).collect()
    return with_contacts(static, contacts, policy, at=at, channel=channel)


def plan_static(
    candidates: pl.DataFrame,
    members: pl.DataFrame,
    policy: Policy,
    *,
    at: datetime,
    channel: str,
) -> pl.LazyFrame:
    """Rows that pass every rule needing no interaction history, with their economics.

    Valid for one day and channel: an online service computes it once per day (and model)
    and applies :func:`with_contacts` per request.
    """
    policy.check_channel(channel)
    pairs = _check(candidates, CANDIDATE_COLUMNS, "candidates")
    people = _check(members, MEMBER_COLUMNS, "members")
    campaign_rules, offer_rules = _rules(policy, channel)
    economics = policy.economics
    contact_cost = economics.contact_cost.get(channel, 0.0)
    track, multiplier, track_ok = _track(policy)
    cost_cap = (
        pl.max_horizontal(
            pl.col("yearly_value").fill_null(0.0) * economics.member_cost_share,
            pl.lit(economics.member_cost_floor),
        )
        if economics.member_cost_share is not None
        else pl.lit(float("inf"))
    )
    frame = (
        pairs.join(people, on="member_id", how="left")
        .with_columns(
            pl.col("baskets").fill_null(0),
            pl.col("lapsing").fill_null(False),
            pl.col("cold_start").fill_null(True),
            pl.col("redeemed_before").fill_null(False),
            pl.col("in_audience").fill_null(False),
        )
        .join(campaign_rules.lazy(), on="campaign_id", how="left")
        .join(offer_rules.lazy(), on="offer_id", how="left")
    )
    weight = pl.col("c_weight").fill_null(1.0) * pl.col("o_weight").fill_null(1.0)
    boost = pl.col("c_boost").fill_null(0.0) + pl.col("o_boost").fill_null(0.0)
    p = pl.col("p_redeem")
    frame = frame.with_columns(
        pl.col("c_channel_ok").fill_null(True),
        track.alias("track"),
        multiplier.alias("multiplier"),
        track_ok.alias("track_ok"),
        cost_cap.alias("cost_cap"),
        (p * pl.col("cost") + contact_cost).alias("expected_cost"),
        weight.alias("weight"),
        boost.alias("boost"),
    ).with_columns(
        (p * pl.col("value") - pl.col("expected_cost")).alias("expected_value"),
        (pl.col("uplift") * pl.col("value") - pl.col("expected_cost")).alias("incremental_value"),
        (pl.col("weight") * pl.col("multiplier") * _gain(economics.objective) + pl.col("boost")
         - (pl.col("expected_cost") if economics.objective != "redemptions" else 0.0)
         ).alias("priority"),
    )  # fmt: skip
    return frame.filter(_static_rules(policy, at)).drop(
        "c_weight", "o_weight", "c_boost", "o_boost", "c_channel_ok", "track_ok"
    )


def with_contacts(
    static: pl.DataFrame,
    contacts: ContactHistory | None,
    policy: Policy,
    *,
    at: datetime,
    channel: str,
) -> pl.DataFrame:
    """:func:`plan_static` rows that pass the contact policy
    (:func:`~nbo.decisioning.contacts.contact_rules`), with each member's ``capacity``."""
    offers = static["offer_id"].unique().sort()
    codes = dict(zip(offers.to_list(), range(offers.len()), strict=True))
    keep, capacity = contact_rules(
        static["member_id"].to_numpy().astype(np.int64),
        static["offer_id"].replace_strict(codes, return_dtype=pl.Int64).to_numpy(),
        codes,
        None if contacts is None
        else ContactArrays.of_history(contacts, policy, at=at, channel=channel),
        policy,
        channel=channel,
    )  # fmt: skip
    return static.with_columns(capacity=pl.Series(capacity, dtype=pl.Int64)).filter(pl.Series(keep))
