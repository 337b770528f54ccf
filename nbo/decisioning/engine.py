"""The decision engine: scored candidates in, each member's offers out — batch or one member.

:func:`decide` is pure (no I/O): :func:`~nbo.decisioning.prepare.prepare` applies eligibility,
contact policy, tracks and economics; :func:`~nbo.decisioning.budget.allocate` fills every
member's list within the club-wide budgets; :func:`~nbo.decisioning.explore.explore` swaps a
small share of last slots for Thompson-sampled offers and records propensities; then each
decision gets its send time and reason.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import polars as pl
from numpy.typing import NDArray

from nbo.decisioning.budget import Allocation, Budgets, allocate
from nbo.decisioning.explore import explore, matching_odds
from nbo.decisioning.policy import Policy
from nbo.decisioning.prepare import ContactHistory, plan_static, with_contacts
from nbo.decisioning.present import reason, send_at
from nbo.decisioning.select import ListRules, Rows

__all__ = [
    "DECISION_COLUMNS",
    "Decisions",
    "OfferStats",
    "decide",
    "decide_prepared",
    "exploration_odds",
]

DECISION_COLUMNS = (
    "decision_id", "member_id", "offer_id", "campaign_id", "channel", "rank", "p_redeem",
    "p_buy", "uplift", "uplift_measured", "value", "cost", "expected_value", "expected_cost",
    "incremental_value", "priority", "send_at", "reason", "propensity", "explored", "track",
    "cold_start", "model_version", "decided_at",
)  # fmt: skip


@dataclass(frozen=True)
class OfferStats:
    """Offer-level exposures and redemptions from the interaction history (for exploration)."""

    frame: pl.DataFrame  # offer_id, exposures, redemptions

    @staticmethod
    def empty() -> OfferStats:
        return OfferStats(
            pl.DataFrame(schema={"offer_id": pl.String, "exposures": pl.Int64,
                                 "redemptions": pl.Int64})
        )  # fmt: skip


@dataclass(frozen=True)
class Decisions:
    decisions: pl.DataFrame  # DECISION_COLUMNS, sorted by member_id, rank
    allocation: Allocation | None
    campaigns: list[str]  # row order of allocation.prices / usage
    eligible_rows: int


def _codes(frame: pl.DataFrame, campaigns: list[str]) -> pl.DataFrame:
    """Dense codes: member, campaign (its index in ``campaigns``), (member, category/campaign).

    ``frame`` is sorted by member. The pair codes only name groups (any numbering decides the
    same), so they are ranks of integer keys rather than of structs.
    """
    n_campaigns = max(len(campaigns), 1)
    category = pl.col("category").fill_null("").cast(pl.Categorical).to_physical().cast(pl.Int64)
    member = pl.col("member_id")
    return frame.with_columns(
        _m=(member != member.shift(1)).fill_null(True).cast(pl.Int64).cum_sum() - 1,
        _c=pl.col("campaign_id").replace_strict(
            campaigns, list(range(len(campaigns))), return_dtype=pl.Int64
        )
        if campaigns
        else pl.lit(None, pl.Int64),
        _cat=category,
    ).with_columns(
        _mc=(pl.col("_m") * (pl.col("_cat").max() + 1) + pl.col("_cat")).rank("dense")
        .cast(pl.Int64) - 1,
        _mp=(pl.col("_m") * n_campaigns + pl.col("_c")).rank("dense").cast(pl.Int64) - 1,
    )  # fmt: skip


def _budgets(policy: Policy, campaigns: list[str]) -> Budgets:
    limits = np.full((len(campaigns), 3), np.inf)
    for i, campaign in enumerate(campaigns):
        rules = policy.campaign(campaign)
        for k, limit in enumerate((rules.max_redemptions, rules.max_cost, rules.max_audience)):
            if limit is not None:
                limits[i, k] = float(limit)
    return Budgets(limits)


def exploration_odds(
    frame: pl.DataFrame, stats: OfferStats, policy: Policy, *, seed: int | None = None
) -> pl.DataFrame:
    """offer_id, odds: each offer's Thompson-sampling matching odds (see ``explore``).

    ``frame`` holds candidates (offer_id, p_redeem); an online service computes this once per
    model load and passes it to :func:`decide` for every request.
    """
    rng = np.random.default_rng(policy.seed if seed is None else seed)
    offers = (
        frame.group_by("offer_id")
        .agg(mean_p=pl.col("p_redeem").mean())
        .join(stats.frame, on="offer_id", how="left")
        .sort("offer_id")
        .with_columns(pl.col("exposures", "redemptions").fill_null(0))
    )
    odds = matching_odds(
        offers["mean_p"].to_numpy(),
        offers["exposures"].to_numpy().astype(np.float64),
        offers["redemptions"].to_numpy().astype(np.float64),
        prior_strength=policy.exploration.prior_strength,
        draws=policy.exploration.draws,
        rng=rng,
    )
    return offers.select("offer_id").with_columns(odds=pl.Series(odds, dtype=pl.Float64))


def _track_label() -> pl.Expr:
    explored = pl.col("explored")
    return pl.when(explored).then(pl.lit("explore")).otherwise(pl.col("track"))


def decide(
    candidates: pl.DataFrame,
    members: pl.DataFrame,
    policy: Policy,
    *,
    at: datetime,
    channel: str,
    contacts: ContactHistory | None = None,
    offer_stats: OfferStats | None = None,
    model_version: str = "unknown",
    run_id: str = "run",
    closed_campaigns: frozenset[str] = frozenset(),
    odds: pl.DataFrame | None = None,
) -> Decisions:
    """Decide every member's offers for ``channel`` at ``at``; see the module docstring.

    ``closed_campaigns`` take no new decisions (an online caller whose campaign budget is spent).
    ``run_id`` prefixes decision ids and seeds the exploration draws together with the policy's
    seed: the same inputs, policy and run id give the same decisions. ``odds`` (from
    :func:`exploration_odds`) saves recomputing the exploration odds on every call.
    """
    static = plan_static(candidates, members, policy, at=at, channel=channel).collect()
    return _decide(
        static, policy, at=at, channel=channel, contacts=contacts, offer_stats=offer_stats,
        model_version=model_version, run_id=run_id, closed_campaigns=closed_campaigns, odds=odds,
    )  # fmt: skip


def decide_prepared(
    static: pl.DataFrame,
    policy: Policy,
    *,
    at: datetime,
    channel: str,
    contacts: ContactHistory | None = None,
    model_version: str = "unknown",
    run_id: str = "run",
    closed_campaigns: frozenset[str] = frozenset(),
    odds: pl.DataFrame | None = None,
) -> Decisions:
    """:func:`decide` from rows already through :func:`~nbo.decisioning.prepare.plan_static`
    for the same day, channel and policy (an online service keeps them per member)."""
    return _decide(
        static, policy, at=at, channel=channel, contacts=contacts, offer_stats=None,
        model_version=model_version, run_id=run_id, closed_campaigns=closed_campaigns, odds=odds,
    )  # fmt: skip


def _decide(
    static: pl.DataFrame,
    policy: Policy,
    *,
    at: datetime,
    channel: str,
    contacts: ContactHistory | None,
    offer_stats: OfferStats | None,
    model_version: str,
    run_id: str,
    closed_campaigns: frozenset[str],
    odds: pl.DataFrame | None,
) -> Decisions:
    frame = _eligible(static, contacts, policy, at=at, channel=channel,
                      closed_campaigns=closed_campaigns, odds=odds)  # fmt: skip
    return _decide_eligible(frame, policy, at=at, channel=channel, offer_stats=offer_stats,
                            odds=odds, model_version=model_version, run_id=run_id)  # fmt: skip


def _decide_eligible(
    frame: pl.DataFrame,
    policy: Policy,
    *,
    at: datetime,
    channel: str,
    offer_stats: OfferStats | None,
    odds: pl.DataFrame | None,
    model_version: str,
    run_id: str,
) -> Decisions:
    """Allocation, exploration and decisions for rows through :func:`_eligible`."""
    campaigns = frame["campaign_id"].unique().sort().to_list()
    arbitration = _Arbitration.build(frame, policy, campaigns)
    budgets = _budgets(policy, campaigns)
    a = arbitration
    allocation = allocate(a.rows, a.priority, a.use, a.rules, budgets, seed=policy.seed)
    rng = np.random.default_rng([policy.seed, zlib.crc32(run_id.encode())])
    out = _finish(arbitration, allocation.chosen, budgets, policy, at=at, channel=channel,
                  offer_stats=offer_stats, odds=odds, model_version=model_version, run_id=run_id,
                  rng=rng)  # fmt: skip
    return Decisions(out, allocation, campaigns, frame.height)


def _eligible(
    static: pl.DataFrame,
    contacts: ContactHistory | None,
    policy: Policy,
    *,
    at: datetime,
    channel: str,
    closed_campaigns: frozenset[str],
    odds: pl.DataFrame | None,
) -> pl.DataFrame:
    """Static rows through the contact policy (and open campaigns), with ``odds`` if given."""
    frame = with_contacts(static, contacts, policy, at=at, channel=channel)
    if closed_campaigns:
        frame = frame.filter(~pl.col("campaign_id").is_in(list(closed_campaigns)))
    if odds is not None:
        frame = frame.join(odds.select("offer_id", "odds"), on="offer_id", how="left")
    return frame


@dataclass(frozen=True)
class _Arbitration:
    """Eligible rows sorted by member and priority, as the allocation's arrays."""

    frame: pl.DataFrame
    rows: Rows
    rules: ListRules
    priority: NDArray[np.float64]
    use: NDArray[np.float64]

    @staticmethod
    def build(frame: pl.DataFrame, policy: Policy, campaigns: list[str]) -> _Arbitration:
        frame = _codes(
            frame.sort(["member_id", "priority", "offer_id"], descending=[False, True, False]),
            campaigns,
        )
        n_members = int(frame["_m"].max()) + 1 if frame.height else 0  # type: ignore[arg-type]
        rows = Rows(
            member=frame["_m"].to_numpy(),
            category=frame["_mc"].to_numpy(),
            campaign=frame["_c"].to_numpy().astype(np.int64),
            member_campaign=frame["_mp"].to_numpy(),
            is_new=frame["is_new"].fill_null(False).to_numpy(),
            cost=frame["expected_cost"].to_numpy(),
            n_members=n_members,
        )
        first = np.r_[0, np.flatnonzero(np.diff(rows.member)) + 1] if frame.height else []
        capacity = frame["capacity"].to_numpy()[first].astype(np.int64)
        rules = ListRules(
            capacity=capacity,
            new_slots=np.minimum(policy.new_slots(), capacity),
            cost_cap=frame["cost_cap"].to_numpy()[first].astype(np.float64),
            max_per_category=policy.diversity.max_per_category,
            max_per_campaign=policy.diversity.max_per_campaign or policy.slots,
        )
        p = frame["p_redeem"].to_numpy()
        use = np.column_stack([p, frame["expected_cost"].to_numpy(), np.ones(frame.height)])
        return _Arbitration(frame, rows, rules, frame["priority"].to_numpy(), use)


def _finish(
    arbitration: _Arbitration,
    chosen: NDArray[np.bool_],
    budgets: Budgets,
    policy: Policy,
    *,
    at: datetime,
    channel: str,
    offer_stats: OfferStats | None,
    odds: pl.DataFrame | None,
    model_version: str,
    run_id: str,
    rng: np.random.Generator,
) -> pl.DataFrame:
    """Exploration on the allocated lists, then the decisions with send time and reason."""
    frame, rows, rules = arbitration.frame, arbitration.rows, arbitration.rules
    n_members, capacity = rows.n_members, rules.capacity
    # exploration: the last slot of a full list, filled from rows that fit the rest of it
    share = policy.exploration.share
    counts = np.bincount(rows.member[chosen], minlength=n_members)
    full = counts >= capacity
    chosen_idx = np.flatnonzero(chosen)
    last = np.zeros(frame.height, dtype=bool)
    if chosen_idx.size:
        owners = rows.member[chosen_idx]
        is_last = np.r_[owners[1:] != owners[:-1], True]  # rows are priority-ordered
        last[chosen_idx[is_last & full[owners]]] = True
    kept = chosen & ~last
    in_category = np.bincount(rows.category[kept], minlength=int(rows.category.max(initial=0)) + 1)
    in_campaign = np.bincount(
        rows.member_campaign[kept], minlength=int(rows.member_campaign.max(initial=0)) + 1
    )
    # exploration draws only from campaigns without a budget (so budgets hold exactly and the
    # recorded propensities stay exact) and within the member's expected-cost cap
    budgeted: np.ndarray = np.asarray(np.isfinite(budgets.limits).any(axis=1))
    cost_used = np.bincount(rows.member[kept], rows.cost[kept], minlength=n_members)
    allowed = (
        ~chosen
        & (in_category[rows.category] < rules.max_per_category)
        & (in_campaign[rows.member_campaign] < rules.max_per_campaign)
        & ~budgeted[rows.campaign]
        & (rows.cost <= rules.cost_cap[rows.member] - cost_used[rows.member] + 1e-12)
        & (capacity[rows.member] > 0)
    )
    if share > 0 and odds is None:
        table = exploration_odds(frame, offer_stats or OfferStats.empty(), policy)
        frame = frame.join(table, on="offer_id", how="left", maintain_order="left")
    row_odds = frame["odds"].fill_null(0.0).to_numpy() if share > 0 else np.zeros(frame.height)
    explored = explore(
        rows.member, row_odds, chosen, last, allowed, share=share, n_members=n_members, rng=rng
    )
    return (
        frame.with_columns(
            propensity=pl.Series(explored.propensity),
            explored=pl.Series(explored.explored),
        )
        .filter(pl.Series(explored.chosen))
        .sort(["member_id", "priority", "offer_id"], descending=[False, True, False])
        .with_columns(
            rank=pl.int_range(1, pl.len() + 1).over("member_id").cast(pl.Int32),
            channel=pl.lit(channel),
            model_version=pl.lit(model_version),
            decided_at=pl.lit(at),
            send_at=send_at(at, policy.send_lead_hours),
            reason=reason(),
            decision_id=pl.concat_str(
                pl.lit(run_id), pl.col("member_id"), pl.col("offer_id"), separator="-"
            ),
            track=_track_label(),
        )
        .select(DECISION_COLUMNS)
    )
