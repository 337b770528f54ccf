"""Club-wide budgets: allocate offers to maximise total priority under campaign limits.

The problem: choose (member, offer) rows to maximise the summed priority subject to each
member's list rules (:mod:`nbo.decisioning.select`) and, per campaign, a maximum of expected
redemptions, expected cost and members reached. Its Lagrangian relaxation prices each budget:
with prices ``λ`` a row's score is ``priority - λ · use`` and the members decouple. So:

1. **Prices.** The LP relaxation is solved with scipy's HiGHS — whole for a small club, on a
   random sample of members (budgets scaled to the sample) for a large one; its duals on the
   budget rows are the prices.
2. **Allocation.** Every member's list is filled greedily with the priced scores.
3. **Repair.** Rows of a campaign still over a budget are dropped, lowest priority per unit of
   budget first, then the freed slots are refilled from campaigns with room left, accepting
   refill rows in score order only while they fit.
4. **Bound.** For any ``λ ≥ 0``, ``Σ λ·B + Σ_members best list value under priced scores``
   (lists limited only by slots and the category or the campaign cap) bounds every feasible
   allocation from above, the LP relaxation's optimum included; when the LP was solved whole
   its optimum is the bound. The result reports the share of the bound reached.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from nbo.decisioning.lp import solve_lp
from nbo.decisioning.select import ListRules, Rows, greedy_select

__all__ = ["Allocation", "Budgets", "allocate", "upper_bound"]

USES = ("redemptions", "cost", "audience")


@dataclass(frozen=True)
class Budgets:
    """Per campaign limits (``inf`` = none), shape (n_campaigns, 3) for USES."""

    limits: NDArray[np.float64]

    @property
    def binding(self) -> NDArray[np.bool_]:
        return np.isfinite(self.limits)


@dataclass(frozen=True)
class Allocation:
    chosen: NDArray[np.bool_]
    prices: NDArray[np.float64]  # (n_campaigns, 3)
    objective: float  # summed priority of the chosen rows
    bound: float  # upper bound (Lagrangian / LP) on any feasible allocation
    usage: NDArray[np.float64]  # (n_campaigns, 3)

    @property
    def gap(self) -> float:
        """Share of the upper bound the allocation reaches (1.0 = provably optimal)."""
        if self.bound <= 0:
            return 1.0
        return self.objective / self.bound


def _usage(
    rows: Rows, use: NDArray[np.float64], chosen: NDArray[np.bool_], n_campaigns: int
) -> NDArray[np.float64]:
    usage = np.zeros((n_campaigns, 3))
    for k in range(3):
        usage[:, k] = np.bincount(
            rows.campaign[chosen], weights=use[chosen, k], minlength=n_campaigns
        )
    return usage


def _priced(
    rows: Rows, priority: NDArray[np.float64], use: NDArray[np.float64], prices: NDArray[np.float64]
) -> NDArray[np.float64]:
    if not prices.any():  # no budget binds: the same numbers without the product
        return priority - 0.0
    priced: NDArray[np.float64] = priority - (use * prices[rows.campaign]).sum(axis=1)
    return priced


def _select_priced(
    rows: Rows,
    priority: NDArray[np.float64],
    use: NDArray[np.float64],
    prices: NDArray[np.float64],
    rules: ListRules,
    *,
    chosen: NDArray[np.bool_] | None = None,
    closed: NDArray[np.bool_] | None = None,
) -> NDArray[np.bool_]:
    """greedy_select on priced scores."""
    score = _priced(rows, priority, use, prices)
    return greedy_select(rows, score, rules, chosen=chosen, closed=closed)


def _subset(rows: Rows, index: NDArray[np.int64]) -> Rows:
    return Rows(
        member=rows.member[index],
        category=rows.category[index],
        campaign=rows.campaign[index],
        member_campaign=rows.member_campaign[index],
        is_new=rows.is_new[index],
        cost=rows.cost[index],
        n_members=rows.n_members,
    )


def _repair(
    rows: Rows,
    priority: NDArray[np.float64],
    use: NDArray[np.float64],
    chosen: NDArray[np.bool_],
    limits: NDArray[np.float64],
    n_campaigns: int,
) -> NDArray[np.bool_]:
    """Drop the least valuable rows (per unit of budget) of campaigns over a budget."""
    chosen = chosen.copy()
    usage = _usage(rows, use, chosen, n_campaigns)
    for c, k in zip(*np.nonzero(usage > limits + 1e-9), strict=True):
        members_rows = np.flatnonzero(chosen & (rows.campaign == c))
        ratio = priority[members_rows] / np.maximum(use[members_rows, k], 1e-12)
        order = members_rows[np.argsort(-ratio, kind="stable")]
        keep = np.cumsum(use[order, k]) <= limits[c, k] + 1e-9
        chosen[order[~keep]] = False
    return chosen


def _accept_within(
    rows: Rows,
    use: NDArray[np.float64],
    score: NDArray[np.float64],
    candidates: NDArray[np.bool_],
    room: NDArray[np.float64],
) -> NDArray[np.bool_]:
    """Of ``candidates``, those that fit the remaining ``room``, taken in score order.

    A row too big for what is left is skipped, not a stop: smaller rows after it still get in.
    """
    index = np.flatnonzero(candidates)
    pending = index[np.argsort(-score[index], kind="stable")]
    room = room.copy()
    out = np.zeros(len(rows), dtype=bool)
    while pending.size:
        pending = pending[(use[pending] <= room[rows.campaign[pending]] + 1e-9).all(axis=1)]
        if not pending.size:
            break
        accept = np.ones(pending.size, dtype=bool)
        campaign = rows.campaign[pending]
        for c in np.unique(campaign):
            mine = campaign == c
            for k in np.flatnonzero(np.isfinite(room[c])).tolist():
                accept[mine] &= np.cumsum(use[pending[mine], k]) <= room[c, k] + 1e-9
        taken = pending[accept]  # the first fitting row of every campaign is always taken
        out[taken] = True
        for k in range(3):
            room[:, k] -= np.bincount(rows.campaign[taken], use[taken, k], room.shape[0])
        pending = pending[~accept]
    return out


def _best_lists(
    score: NDArray[np.float64],
    group: NDArray[np.int64],
    member: NDArray[np.int64],
    capacity: NDArray[np.int64],
    per_group: int,
) -> NDArray[np.float64]:
    """Per member: the best sum of ``capacity`` rows taking at most ``per_group`` per group.

    Rows already in member order with scores falling within each member (the engine's order
    when no budget is priced) need no sort by score: a stable sort by group, and back to row
    order, rank the rows as the two sorts by (group, -score) and (member, -score) do, but for
    the order of rows of equal score, which changes no sum.
    """
    presorted = bool(
        np.all(
            (member[1:] > member[:-1]) | ((member[1:] == member[:-1]) & (score[1:] <= score[:-1]))
        )
    )
    order = np.argsort(group, kind="stable") if presorted else np.lexsort((-score, group))
    grouped = group[order]
    start = np.r_[0, np.flatnonzero(grouped[1:] != grouped[:-1]) + 1] if order.size else order
    rank = np.arange(order.size) - np.repeat(start, np.diff(np.r_[start, order.size]))
    keep = order[rank < per_group]
    keep = np.sort(keep) if presorted else keep[np.lexsort((-score[keep], member[keep]))]
    owners = member[keep]
    first = np.r_[0, np.flatnonzero(owners[1:] != owners[:-1]) + 1] if keep.size else keep
    rank = np.arange(keep.size) - np.repeat(first, np.diff(np.r_[first, keep.size]))
    best = keep[rank < capacity[owners]]
    return np.bincount(member[best], weights=score[best], minlength=capacity.size).astype(
        np.float64
    )


def _fill_slack(
    rows: Rows,
    priority: NDArray[np.float64],
    use: NDArray[np.float64],
    rules: ListRules,
    chosen: NDArray[np.bool_],
    limits: NDArray[np.float64],
    n_campaigns: int,
) -> NDArray[np.bool_]:
    """Spend budget left over after pricing on free slots, best unpriced priority first."""
    for _ in range(3):
        room = limits - _usage(rows, use, chosen, n_campaigns)
        closed: NDArray[np.bool_] = np.asarray((room <= 1e-9).any(axis=1))
        more = greedy_select(rows, priority, rules, chosen=chosen, closed=closed) & ~chosen
        if not more.any():
            break
        accepted = _accept_within(rows, use, priority, more, room)
        if not accepted.any():
            break
        chosen = chosen | accepted
    return chosen


def upper_bound(
    rows: Rows,
    priority: NDArray[np.float64],
    use: NDArray[np.float64],
    prices: NDArray[np.float64],
    limits: NDArray[np.float64],
    rules: ListRules,
) -> float:
    """Lagrangian bound ``Σ λ·B + Σ_m v_m(λ)`` on any allocation within the budgets.

    ``v_m`` is the member's best list under priced scores with the slot limit and only one of
    the list rules (category cap or campaign cap) — the smaller of the two, each a relaxation
    solved exactly. The discovery slots are a preference of the greedy, not a limit on what an
    allocation may be (a member whose new offers do not fit takes others), so they bound
    nothing (issue 4: a bound that forced them was below allocations the greedy found).
    """
    if len(rows) == 0:
        return 0.0
    score = np.maximum(_priced(rows, priority, use, prices), 0.0)
    by_category = _best_lists(
        score, rows.category, rows.member, rules.capacity, rules.max_per_category
    )
    by_campaign = _best_lists(
        score, rows.member_campaign, rows.member, rules.capacity, rules.max_per_campaign
    )
    finite = np.where(np.isfinite(limits), limits, 0.0)
    best = np.minimum(by_category, by_campaign)
    return float(best.sum() + (prices * finite).sum())


def allocate(
    rows: Rows,
    priority: NDArray[np.float64],
    use: NDArray[np.float64],
    rules: ListRules,
    budgets: Budgets,
    *,
    lp_members: int = 2_000,
    seed: int = 0,
    prices: NDArray[np.float64] | None = None,
) -> Allocation:
    """Choose rows for every member within the club-wide budgets; see the module docstring.

    Up to ``lp_members`` members the LP is solved whole (its optimum is the bound); above it,
    on a random sample of that many members with budgets scaled to the sample. Given
    ``prices`` (one chunk of a club whose prices were found on a sample of all of it), no LP is
    solved and the bound is the Lagrangian one at those prices.
    """
    n_campaigns = budgets.limits.shape[0]
    limits = budgets.limits
    lp_bound: float | None = None
    if prices is not None:
        pass
    elif len(rows) == 0:
        prices = np.zeros((n_campaigns, 3))
        lp_bound = 0.0
    elif not np.isfinite(limits).any():
        prices = np.zeros((n_campaigns, 3))
    elif rows.n_members <= lp_members:
        prices, lp_bound = solve_lp(rows, priority, use, rules, limits)
    else:
        rng = np.random.default_rng(seed)
        sample = np.zeros(rows.n_members, dtype=bool)
        sample[rng.choice(rows.n_members, lp_members, replace=False)] = True
        index = np.flatnonzero(sample[rows.member])
        sub = _subset(rows, index)
        prices, _ = solve_lp(
            sub, priority[index], use[index], rules, limits * (lp_members / rows.n_members)
        )
    chosen = _select_priced(rows, priority, use, prices, rules)
    for _ in range(4):
        repaired = _repair(rows, priority, use, chosen, limits, n_campaigns)
        room = limits - _usage(rows, use, repaired, n_campaigns)
        closed: NDArray[np.bool_] = np.asarray((room <= 1e-9).any(axis=1))
        refill = _select_priced(rows, priority, use, prices, rules, chosen=repaired, closed=closed)
        added = refill & ~repaired
        if not added.any():
            chosen = repaired
            break
        accepted = _accept_within(rows, use, _priced(rows, priority, use, prices), added, room)
        chosen = repaired | accepted
        if not (accepted ^ added).any():
            break
    chosen = _repair(rows, priority, use, chosen, limits, n_campaigns)
    chosen = _fill_slack(rows, priority, use, rules, chosen, limits, n_campaigns)
    bound = upper_bound(rows, priority, use, prices, limits, rules)
    if lp_bound is not None:
        bound = min(bound, lp_bound)
    return Allocation(
        chosen=chosen,
        prices=prices,
        objective=float(priority[chosen].sum()),
        bound=bound,
        usage=_usage(rows, use, chosen, n_campaigns),
    )
