"""Deciding a big club chunk by chunk of members, within club-wide budgets.

The arrays for twenty million candidate rows do not fit beside everything else, and nothing in
one member's list depends on another member's except through the club-wide budgets and the
exploration odds. :func:`decide_chunks` takes the static rows
(:func:`~nbo.decisioning.prepare.plan_static`) one chunk of members at a time (chunks are
consecutive member_id ranges, in order):

1. each chunk goes through the contact policy and is kept slim: the pair columns only (the
   offers' and the members' columns are kept once and joined back for the chunk's turn);
2. the exploration odds come from the mean ``p_redeem`` per offer over every chunk, and the
   budget prices from the LP on a random sample of the whole club's members (the kernel on
   that sample, budgets scaled to it);
3. each chunk becomes a plan and goes through the kernel
   (:func:`~nbo.decisioning.kernel.decide_plan`) at those prices within its share (by
   members) of what is left of each budget, so every budget holds club-wide and slack left by
   one chunk passes to the next.

The bound reported is the Lagrangian bound at the common prices, ``Σ λ·B + Σ_members v_m(λ)``,
summed over the chunks: an upper bound on any allocation of the whole club, so the reported
share of it is honest. One chunk is exactly :func:`~nbo.decisioning.engine.decide_prepared`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import polars as pl

from nbo.decisioning.budget import Allocation, Budgets
from nbo.decisioning.contacts import ContactArrays, ContactHistory
from nbo.decisioning.engine import (
    DECISION_COLUMNS,
    Decisions,
    OfferStats,
    decide_prepared,
    decisions_frame,
    exploration_odds,
    run_prefix,
)
from nbo.decisioning.kernel import budget_limits, decide_plan
from nbo.decisioning.plan import Plan
from nbo.decisioning.policy import Policy
from nbo.decisioning.prepare import with_contacts

__all__ = ["decide_chunks"]

_PAIR = ("member_id", "offer_id", "p_redeem", "p_buy", "uplift", "uplift_measured", "value",
         "cost", "expected_value", "expected_cost", "incremental_value", "priority", "is_new",
         "bought_baskets", "days_since_bought", "usual_gap_days")  # fmt: skip
_OFFER = ("offer_id", "campaign_id", "category", "start_date", "end_date", "product")
_MEMBER = ("member_id", "track", "cold_start", "next_visit_date", "preferred_hour", "cost_cap")


@dataclass(frozen=True)
class _Chunk:
    pairs: pl.DataFrame  # _PAIR columns
    members: pl.DataFrame  # _MEMBER columns, one row per member, sorted by member_id

    def frame(self, offers: pl.DataFrame) -> pl.DataFrame:
        return self.pairs.join(offers, on="offer_id", how="left").join(
            self.members, on="member_id", how="left"
        )


def _slim(frame: pl.DataFrame) -> tuple[_Chunk, pl.DataFrame]:
    members = frame.select(_MEMBER).unique("member_id", keep="first").sort("member_id")
    return _Chunk(frame.select(_PAIR), members), frame.select(_OFFER).unique("offer_id")


def _odds(parts: list[pl.DataFrame], stats: OfferStats | None, policy: Policy) -> pl.DataFrame:
    """Exploration odds from the mean p_redeem of each offer over every chunk's static rows
    (as :func:`~nbo.decisioning.engine.decide` and a service's plan compute them)."""
    means = (
        pl.concat(parts).group_by("offer_id").agg(p_redeem=pl.col("p").sum() / pl.col("n").sum())
    )
    return exploration_odds(means, stats or OfferStats.empty(), policy)


def decide_chunks(
    statics: Iterable[pl.DataFrame],
    policy: Policy,
    *,
    at: datetime,
    channel: str,
    contacts: ContactHistory | None = None,
    offer_stats: OfferStats | None = None,
    model_version: str = "unknown",
    run_id: str | None = None,
    lp_members: int = 2_000,
) -> Decisions:
    """Decide every member's offers from static rows given chunk by chunk (see the module).

    ``statics`` are :func:`~nbo.decisioning.prepare.plan_static` frames of consecutive,
    disjoint member ranges in increasing order (a generator, so only one is held at a time).
    """
    chunks: list[_Chunk] = []
    offer_parts: list[pl.DataFrame] = []
    first: pl.DataFrame | None = None
    sums: list[pl.DataFrame] = []  # p_redeem per offer over every static row (the plan's odds)
    for whole in statics:
        sums.append(whole.group_by("offer_id").agg(p=pl.col("p_redeem").sum(), n=pl.len()))
        # rows the contact policy blocks today leave at once: fewer rows kept, and a member
        # left with none takes no share of the budgets
        static = with_contacts(whole, contacts, policy, at=at, channel=channel).drop("capacity")
        del whole
        if first is None and not chunks:
            first = static  # kept whole in case it is the only chunk
            continue
        for frame in (first, static) if first is not None else (static,):
            chunk, offers = _slim(frame)
            chunks.append(chunk)
            offer_parts.append(offers)
        first = None
        del static
    if not sums:
        raise ValueError("decide_chunks needs at least one chunk of static rows")
    odds = _odds(sums, offer_stats, policy) if policy.exploration.share > 0 else None
    if first is not None:
        return decide_prepared(
            first, policy, at=at, channel=channel, contacts=contacts,
            model_version=model_version, run_id=run_id, lp_members=lp_members, odds=odds,
        )  # fmt: skip
    offers = pl.concat(offer_parts).unique("offer_id").sort("offer_id")
    prefix = run_id if run_id is not None else run_prefix(at, channel)
    state = None if contacts is None else ContactArrays.of_history(
        contacts, policy, at=at, channel=channel)  # fmt: skip
    campaigns = offers["campaign_id"].unique().sort().to_list()
    limits = budget_limits(policy, campaigns).limits
    prices, lp_bound = _prices(chunks, offers, policy, campaigns, limits, lp_members,
                               at=at, channel=channel, state=state)  # fmt: skip
    finite = np.where(np.isfinite(limits), limits, 0.0)
    remaining = limits.copy()
    members_left = sum(c.members.height for c in chunks)
    outs, chosen, eligible_rows = [], [], 0
    objective, bound, usage = 0.0, float((prices * finite).sum()), np.zeros(limits.shape)
    for chunk in chunks:
        share = chunk.members.height / max(members_left, 1)
        left = np.where(np.isfinite(remaining), np.maximum(remaining, 0.0), 0.0)
        own = np.where(np.isfinite(remaining), left * share, np.inf)
        plan = _plan(chunk.frame(offers), campaigns, at=at, channel=channel, odds=odds)
        picks = decide_plan(plan, policy, at=at, prefix=prefix, contacts=state,
                            budgets=Budgets(own), prices=prices)  # fmt: skip
        allocation = picks.allocation
        bound += allocation.bound - float((prices * np.where(np.isfinite(own), own, 0.0)).sum())
        objective += allocation.objective
        usage += allocation.usage
        remaining = remaining - allocation.usage
        members_left -= chunk.members.height
        eligible_rows += picks.eligible_rows
        outs.append(decisions_frame(plan, picks, at=at, model_version=model_version,
                                    prefix=prefix))  # fmt: skip
        chosen.append(allocation.chosen)
    if lp_bound is not None:
        bound = min(bound, lp_bound)
    result = Allocation(
        chosen=np.concatenate(chosen),
        prices=prices,
        objective=objective,
        bound=bound,
        usage=usage,
    )
    return Decisions(pl.concat(outs).select(DECISION_COLUMNS), result, campaigns, eligible_rows)


def _plan(
    frame: pl.DataFrame, campaigns: list[str], *, at: datetime, channel: str,
    odds: pl.DataFrame | None,
) -> Plan:  # fmt: skip
    """A chunk's plan whose campaign codes follow the club's ``campaigns`` (budget rows)."""
    return Plan.build(frame, day=at.date(), channel=channel, odds=odds, campaigns=campaigns)


def _prices(
    chunks: list[_Chunk],
    offers: pl.DataFrame,
    policy: Policy,
    campaigns: list[str],
    limits: np.ndarray,
    lp_members: int,
    *,
    at: datetime,
    channel: str,
    state: ContactArrays | None,
) -> tuple[np.ndarray, float | None]:
    """Budget prices from the LP on a random sample of members (the whole club if small)."""
    n_members = sum(c.members.height for c in chunks)
    if not np.isfinite(limits).any() or n_members == 0:
        return np.zeros(limits.shape), None
    rng = np.random.default_rng(policy.seed)
    sampled = np.arange(n_members)
    if n_members > lp_members:
        sampled = np.sort(rng.choice(n_members, lp_members, replace=False))
    parts, offset = [], 0
    for chunk in chunks:
        n = chunk.members.height
        local = sampled[(sampled >= offset) & (sampled < offset + n)] - offset
        ids = chunk.members["member_id"].gather(local)
        parts.append(chunk.pairs.filter(pl.col("member_id").is_in(ids.implode())))
        offset += n
    sample = _Chunk(pl.concat(parts), pl.concat([c.members for c in chunks])).frame(offers)
    plan = _plan(sample, campaigns, at=at, channel=channel, odds=None)
    share = sampled.size / n_members
    picks = decide_plan(plan, policy.model_copy(update={"exploration": policy.exploration.
                        model_copy(update={"share": 0.0})}), at=at, prefix="lp", contacts=state,
                        budgets=Budgets(limits * share), lp_members=sampled.size)  # fmt: skip
    exact = sampled.size == n_members
    return picks.allocation.prices, picks.allocation.bound if exact else None
