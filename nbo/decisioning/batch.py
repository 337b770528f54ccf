"""Deciding a big club chunk by chunk of members, within club-wide budgets.

The engine's arrays for twenty million candidate rows do not fit beside everything else, and
nothing in one member's list depends on another member's except through the club-wide budgets
and the exploration odds. :func:`decide_chunks` takes the static rows
(:func:`~nbo.decisioning.prepare.plan_static`) one chunk of members at a time (chunks are
consecutive member_id ranges, in order):

1. each chunk goes through the contact policy and is kept slim: the pair columns only (the
   offers' and the members' columns are kept once and joined back for the chunk's turn);
2. the exploration odds come from the mean ``p_redeem`` per offer over every chunk, and the
   budget prices from the LP on a random sample of the whole club's members, as
   :func:`~nbo.decisioning.budget.allocate` does for a big club in one piece;
3. each chunk is allocated at those prices within its share (by members) of what is left of
   each budget, so every budget holds club-wide and slack left by one chunk passes to the next;
   then explored and turned into decisions.

The bound reported is the Lagrangian bound at the common prices, ``Σ λ·B + Σ_members v_m(λ)``,
summed over the chunks: an upper bound on any allocation of the whole club, so the reported
share of it is honest. One chunk is exactly :func:`~nbo.decisioning.engine.decide_prepared`.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import polars as pl

from nbo.decisioning.budget import Allocation, Budgets, allocate
from nbo.decisioning.engine import (
    DECISION_COLUMNS,
    Decisions,
    OfferStats,
    _Arbitration,
    _budgets,
    _decide_eligible,
    _eligible,
    _finish,
    exploration_odds,
)
from nbo.decisioning.lp import solve_lp
from nbo.decisioning.policy import Policy
from nbo.decisioning.prepare import ContactHistory

__all__ = ["decide_chunks"]

_PAIR = ("member_id", "offer_id", "p_redeem", "p_buy", "uplift", "uplift_measured", "value",
         "cost", "expected_value", "expected_cost", "incremental_value", "priority", "is_new",
         "bought_baskets", "days_since_bought", "usual_gap_days")  # fmt: skip
_OFFER = ("offer_id", "campaign_id", "category", "start_date", "end_date", "product")
_MEMBER = ("member_id", "track", "cold_start", "next_visit_date", "preferred_hour", "capacity",
           "cost_cap")  # fmt: skip


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


def _odds(chunks: list[_Chunk], stats: OfferStats | None, policy: Policy) -> pl.DataFrame:
    """Exploration odds from the mean p_redeem of each offer over every chunk."""
    sums = pl.concat(
        [c.pairs.group_by("offer_id").agg(p=pl.col("p_redeem").sum(), n=pl.len()) for c in chunks]
    )
    means = sums.group_by("offer_id").agg(p_redeem=pl.col("p").sum() / pl.col("n").sum())
    return exploration_odds(means, stats or OfferStats.empty(), policy)


def _prices(
    chunks: list[_Chunk],
    offers: pl.DataFrame,
    policy: Policy,
    campaigns: list[str],
    limits: np.ndarray,
    lp_members: int,
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
    a = _Arbitration.build(sample, policy, campaigns)
    share = sampled.size / n_members
    prices, optimum = solve_lp(a.rows, a.priority, a.use, a.rules, limits * share)
    return prices, optimum if sampled.size == n_members else None


def decide_chunks(
    statics: Iterable[pl.DataFrame],
    policy: Policy,
    *,
    at: datetime,
    channel: str,
    contacts: ContactHistory | None = None,
    offer_stats: OfferStats | None = None,
    model_version: str = "unknown",
    run_id: str = "run",
    lp_members: int = 2_000,
) -> Decisions:
    """Decide every member's offers from static rows given chunk by chunk (see the module).

    ``statics`` are :func:`~nbo.decisioning.prepare.plan_static` frames of consecutive,
    disjoint member ranges in increasing order (a generator, so only one is held at a time).
    """
    chunks: list[_Chunk] = []
    offer_parts: list[pl.DataFrame] = []
    first: pl.DataFrame | None = None
    eligible_rows = 0
    for static in statics:
        frame = _eligible(static, contacts, policy, at=at, channel=channel,
                          closed_campaigns=frozenset(), odds=None)  # fmt: skip
        del static
        eligible_rows += frame.height
        if first is None and not chunks:
            first = frame  # kept whole in case it is the only chunk
            continue
        if first is not None:
            chunk, offers = _slim(first)
            chunks.append(chunk)
            offer_parts.append(offers)
            first = None
        chunk, offers = _slim(frame)
        chunks.append(chunk)
        offer_parts.append(offers)
        del frame
    if not chunks:
        if first is None:
            raise ValueError("decide_chunks needs at least one chunk of static rows")
        return _decide_eligible(first, policy, at=at, channel=channel, offer_stats=offer_stats,
                                odds=None, model_version=model_version, run_id=run_id)  # fmt: skip
    offers = pl.concat(offer_parts).unique("offer_id").sort("offer_id")
    campaigns = offers["campaign_id"].unique().sort().to_list()
    budgets = _budgets(policy, campaigns)
    limits = budgets.limits
    odds = _odds(chunks, offer_stats, policy) if policy.exploration.share > 0 else None
    prices, lp_bound = _prices(chunks, offers, policy, campaigns, limits, lp_members)
    finite = np.where(np.isfinite(limits), limits, 0.0)
    remaining = limits.copy()
    members_left = sum(c.members.height for c in chunks)
    outs, chosen = [], []
    objective, bound, usage = 0.0, float((prices * finite).sum()), np.zeros(limits.shape)
    for k, chunk in enumerate(chunks):
        share = chunk.members.height / max(members_left, 1)
        left = np.where(np.isfinite(remaining), np.maximum(remaining, 0.0), 0.0)
        own = Budgets(np.where(np.isfinite(remaining), left * share, np.inf))
        frame = chunk.frame(offers)
        if odds is not None:
            frame = frame.join(odds, on="offer_id", how="left")
        a = _Arbitration.build(frame, policy, campaigns)
        del frame
        allocation = allocate(a.rows, a.priority, a.use, a.rules, own, seed=policy.seed,
                              prices=prices)  # fmt: skip
        own_finite = np.where(np.isfinite(own.limits), own.limits, 0.0)
        bound += allocation.bound - float((prices * own_finite).sum())
        objective += allocation.objective
        usage += allocation.usage
        remaining = remaining - allocation.usage
        members_left -= chunk.members.height
        rng = np.random.default_rng([policy.seed, zlib.crc32(run_id.encode()), k])
        outs.append(
            _finish(a, allocation.chosen, own, policy, at=at, channel=channel, offer_stats=None,
                    odds=odds, model_version=model_version, run_id=run_id, rng=rng)
        )  # fmt: skip
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
