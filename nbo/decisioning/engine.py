"""The decision engine for a batch run: scored candidates in, each member's offers out.

:func:`decide` is pure (no I/O): :func:`~nbo.decisioning.prepare.plan_static` applies the
rules that need no history (eligibility, tracks, economics) and the rows become a
:class:`~nbo.decisioning.plan.Plan`; the kernel (:func:`~nbo.decisioning.kernel.decide_plan`)
applies everything else — contact policy, lists within the club-wide budgets, exploration,
send time and reason — exactly as it does for one member of a request. Decision ids are
``{run_id}-{member_id}-{offer_id}``; with ``run_id = {day:%Y%m%d}-{channel}`` (what
``nbo decide`` and the service use) they are the same for the same day, so a rerun records
nothing twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import polars as pl

from nbo.decisioning.budget import Allocation
from nbo.decisioning.contacts import ContactArrays, ContactHistory
from nbo.decisioning.explore import matching_odds
from nbo.decisioning.kernel import Picks, budget_limits, decide_plan
from nbo.decisioning.plan import Plan
from nbo.decisioning.policy import Policy
from nbo.decisioning.prepare import plan_static

__all__ = [
    "DECISION_COLUMNS",
    "DECISION_SCHEMA",
    "Decisions",
    "OfferStats",
    "decide",
    "decide_prepared",
    "decisions_frame",
    "exploration_odds",
    "run_prefix",
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


def run_prefix(at: datetime, channel: str) -> str:
    """The decision-id prefix of a day and channel: ``20240401-email``."""
    return f"{at:%Y%m%d}-{channel}"


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
    run_id: str | None = None,
    closed_campaigns: frozenset[str] = frozenset(),
    odds: pl.DataFrame | None = None,
) -> Decisions:
    """Decide every member's offers for ``channel`` at ``at``; see the module docstring.

    ``closed_campaigns`` take no new decisions (an online caller whose campaign budget is spent).
    ``run_id`` (default :func:`run_prefix`) prefixes decision ids and keys the exploration draws
    with the policy's seed: the same inputs, policy and run id give the same decisions.
    ``odds`` (from :func:`exploration_odds`) saves recomputing the exploration odds.
    """
    static = plan_static(candidates, members, policy, at=at, channel=channel).collect()
    if odds is None and policy.exploration.share > 0:
        odds = exploration_odds(static, offer_stats or OfferStats.empty(), policy)
    return decide_prepared(
        static, policy, at=at, channel=channel, contacts=contacts, model_version=model_version,
        run_id=run_id, closed_campaigns=closed_campaigns, odds=odds,
    )  # fmt: skip


def decide_prepared(
    static: pl.DataFrame,
    policy: Policy,
    *,
    at: datetime,
    channel: str,
    contacts: ContactHistory | None = None,
    model_version: str = "unknown",
    run_id: str | None = None,
    closed_campaigns: frozenset[str] = frozenset(),
    odds: pl.DataFrame | None = None,
    lp_members: int = 2_000,
) -> Decisions:
    """:func:`decide` from rows already through :func:`~nbo.decisioning.prepare.plan_static`
    for the same day, channel and policy (exploration odds without offer history if none)."""
    if odds is None and policy.exploration.share > 0:
        odds = exploration_odds(static, OfferStats.empty(), policy)
    plan = Plan.build(static, day=at.date(), channel=channel, odds=odds)
    prefix = run_id if run_id is not None else run_prefix(at, channel)
    picks = decide_plan(
        plan, policy, at=at, prefix=prefix,
        contacts=None if contacts is None else ContactArrays.of_history(
            contacts, policy, at=at, channel=channel),
        budgets=budget_limits(policy, plan.campaign_ids), closed_campaigns=closed_campaigns,
        lp_members=lp_members,
    )  # fmt: skip
    out = decisions_frame(plan, picks, at=at, model_version=model_version, prefix=prefix)
    return Decisions(out, picks.allocation, plan.campaign_ids, picks.eligible_rows)


DECISION_SCHEMA: dict[str, pl.DataType] = {
    "decision_id": pl.String(), "member_id": pl.Int64(), "offer_id": pl.String(),
    "campaign_id": pl.String(), "channel": pl.String(), "rank": pl.Int32(),
    "p_redeem": pl.Float64(), "p_buy": pl.Float64(), "uplift": pl.Float64(),
    "uplift_measured": pl.Boolean(), "value": pl.Float64(), "cost": pl.Float64(),
    "expected_value": pl.Float64(), "expected_cost": pl.Float64(),
    "incremental_value": pl.Float64(), "priority": pl.Float64(), "send_at": pl.Datetime("us"),
    "reason": pl.String(), "propensity": pl.Float64(), "explored": pl.Boolean(),
    "track": pl.String(), "cold_start": pl.Boolean(), "model_version": pl.String(),
    "decided_at": pl.Datetime("us"),
}  # fmt: skip
"""Types of the DECISION_COLUMNS."""

_FROM_PLAN = ("offer_id", "campaign_id", "p_redeem", "p_buy", "uplift", "uplift_measured",
              "value", "cost", "expected_value", "expected_cost", "incremental_value",
              "priority", "cold_start")  # fmt: skip


def decisions_frame(
    plan: Plan, picks: Picks, *, at: datetime, model_version: str, prefix: str
) -> pl.DataFrame:
    """The kernel's picks as a DECISION_COLUMNS frame (member, rank order)."""
    n = picks.rows.size
    columns: dict[str, Any] = {name: plan.columns[name][picks.rows] for name in _FROM_PLAN}
    offers = [str(o) for o in columns["offer_id"]]
    members = picks.member_ids.tolist()
    columns |= {
        "decision_id": [f"{prefix}-{m}-{o}" for m, o in zip(members, offers, strict=True)],
        "member_id": picks.member_ids,
        "offer_id": offers,
        "channel": [plan.channel] * n,
        "rank": picks.rank,
        "send_at": picks.send_at,
        "reason": picks.reason,
        "propensity": picks.propensity,
        "explored": picks.explored,
        "track": picks.track,
        "model_version": [model_version] * n,
        "decided_at": np.full(n, np.datetime64(at, "us")),
    }
    return pl.DataFrame(
        {
            name: pl.Series(name, columns[name], dtype=DECISION_SCHEMA[name], strict=False)
            for name in DECISION_COLUMNS
        }
    )
