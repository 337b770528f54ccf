"""The decision kernel: a day's plan in, chosen offers out — for one member or the whole club.

Every rule that depends on the moment of the decision is applied here, once, whether a batch
run decides every member of a :class:`~nbo.decisioning.plan.Plan` or a request decides one:

1. the contact policy (:func:`~nbo.decisioning.contacts.contact_rules`) and closed campaigns;
2. each member's list under the list rules — slots, category and campaign caps, the expected
   cost cap, discovery slots — at the budget prices (:func:`~nbo.decisioning.budget.allocate`,
   which fills lists with :func:`~nbo.decisioning.select.greedy_select`); budgets themselves
   are the batch's club-wide step: a batch run passes the limits (the LP prices them and the
   allocation holds them), a request passes the prices the batch found, if any, and the
   campaigns whose budget is spent;
3. exploration of the last slot with its exact propensity
   (:func:`~nbo.decisioning.explore.explore`), with draws keyed by member, day and channel;
4. the send time and the reason (:mod:`nbo.decisioning.present`).

Members are independent except through budgets, so a member decided alone gets what the
batch gives it whenever no budget binds. The rules that need no history (eligibility,
tracks, economics) were applied when the plan was made
(:func:`~nbo.decisioning.prepare.plan_static`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np
from numpy.typing import NDArray

from nbo.decisioning.budget import Allocation, Budgets, allocate
from nbo.decisioning.contacts import ContactArrays, contact_rules
from nbo.decisioning.explore import Draws, MemberDraws, explore
from nbo.decisioning.plan import Plan
from nbo.decisioning.policy import Policy
from nbo.decisioning.present import reason, send_at
from nbo.decisioning.select import ListRules, Rows

__all__ = ["Picks", "budget_limits", "decide_plan", "member_draws"]


@dataclass(frozen=True)
class Picks:
    """The kernel's answer: chosen plan rows, in member then rank order, and how."""

    rows: NDArray[np.int64]  # plan row indices
    member_ids: NDArray[np.int64]
    rank: NDArray[np.int64]
    propensity: NDArray[np.float64]
    explored: NDArray[np.bool_]
    track: list[str]  # "explore" where explored
    send_at: NDArray[np.datetime64]
    reason: list[str]
    allocation: Allocation
    eligible_rows: int


def budget_limits(policy: Policy, campaigns: list[str]) -> Budgets:
    """Per campaign (in ``campaigns`` order) the policy's limits; ``inf`` where none."""
    limits = np.full((len(campaigns), 3), np.inf)
    for i, campaign in enumerate(campaigns):
        rules = policy.campaign(campaign)
        for k, limit in enumerate((rules.max_redemptions, rules.max_cost, rules.max_audience)):
            if limit is not None:
                limits[i, k] = float(limit)
    return Budgets(limits)


def member_draws(prefix: str, member_ids: NDArray[np.int64], seed: int) -> MemberDraws:
    """Exploration draws of each member, keyed ``{prefix}-{member_id}`` (decision ids too)."""
    return MemberDraws([f"{prefix}-{m}" for m in member_ids.tolist()], seed)


def _dense(keys: NDArray[np.int64]) -> NDArray[np.int64]:
    if keys.size == 0:
        return keys.astype(np.int64)
    _, inverse = np.unique(keys, return_inverse=True)
    return inverse.reshape(-1).astype(np.int64)


def _arbitration(
    plan: Plan, index: NDArray[np.int64], row_member: NDArray[np.int64],
    capacity: NDArray[np.int64], policy: Policy,
) -> tuple[Rows, ListRules, NDArray[np.int64]]:  # fmt: skip
    """The list problem of rows ``index`` (grouped by member, in plan order)."""
    cols = plan.columns
    new_member = np.r_[True, row_member[1:] != row_member[:-1]] if index.size else np.zeros(0, bool)
    member = (np.cumsum(new_member) - 1).astype(np.int64)
    first = np.flatnonzero(new_member)
    n_campaigns = max(len(plan.campaign_ids), 1)
    campaign = cols["campaign_code"][index].astype(np.int64)
    category = cols["category_code"][index].astype(np.int64)
    rows = Rows(
        member=member,
        category=_dense(member * (int(category.max(initial=0)) + 1) + category),
        campaign=campaign,
        member_campaign=_dense(member * n_campaigns + campaign),
        is_new=cols["is_new"][index],
        cost=cols["expected_cost"][index],
        n_members=int(first.size),
    )
    member_capacity = capacity[first]
    rules = ListRules(
        capacity=member_capacity,
        new_slots=np.minimum(policy.new_slots(), member_capacity),
        cost_cap=cols["cost_cap"][index][first].astype(np.float64),
        max_per_category=policy.diversity.max_per_category,
        max_per_campaign=policy.diversity.max_per_campaign or policy.slots,
    )
    return rows, rules, first


def _exploration_pool(
    rows: Rows, rules: ListRules, chosen: NDArray[np.bool_], budgeted: NDArray[np.bool_]
) -> tuple[NDArray[np.bool_], NDArray[np.bool_]]:
    """Each full list's last greedy row, and the rows that may replace it (fitting the rest of
    the list, of campaigns without a budget so budgets hold and propensities stay exact)."""
    n_members, capacity = rows.n_members, rules.capacity
    counts = np.bincount(rows.member[chosen], minlength=n_members)
    chosen_idx = np.flatnonzero(chosen)
    last = np.zeros(len(rows), dtype=bool)
    if chosen_idx.size:
        owners = rows.member[chosen_idx]
        is_last = np.r_[owners[1:] != owners[:-1], True]  # rows are priority-ordered
        last[chosen_idx[is_last & (counts >= capacity)[owners]]] = True
    kept = chosen & ~last
    in_category = np.bincount(rows.category[kept], minlength=int(rows.category.max(initial=0)) + 1)
    in_campaign = np.bincount(
        rows.member_campaign[kept], minlength=int(rows.member_campaign.max(initial=0)) + 1
    )
    cost_used = np.bincount(rows.member[kept], rows.cost[kept], minlength=n_members)
    allowed = (
        ~chosen
        & (in_category[rows.category] < rules.max_per_category)
        & (in_campaign[rows.member_campaign] < rules.max_per_campaign)
        & ~budgeted[rows.campaign]
        & (rows.cost <= rules.cost_cap[rows.member] - cost_used[rows.member] + 1e-12)
        & (capacity[rows.member] > 0)
    )
    return last, allowed


def decide_plan(
    plan: Plan,
    policy: Policy,
    *,
    at: datetime,
    prefix: str,
    rows: slice | None = None,
    member_id: int | None = None,
    contacts: ContactArrays | None = None,
    budgets: Budgets | None = None,
    prices: NDArray[np.float64] | None = None,
    closed_campaigns: frozenset[str] = frozenset(),
    draws: Draws | None = None,
    lp_members: int = 2_000,
) -> Picks:
    """Decide the members of ``rows`` of ``plan`` (all by default) at ``at``; see the module.

    ``member_id`` stands for every row's member (a cold-start template decided for a member
    the plan does not know). ``budgets`` (per ``plan.campaign_ids``) are held over the rows
    decided; ``prices`` skip the LP. ``draws`` default to :func:`member_draws` with
    ``prefix`` and the policy's seed.
    """
    where = rows if rows is not None else slice(0, plan.rows)
    index = np.arange(where.start, where.stop, dtype=np.int64)
    cols = plan.columns
    if member_id is not None:
        row_member = np.full(index.size, member_id, dtype=np.int64)
    else:
        row_member = plan.member_ids[np.searchsorted(plan.starts, index, side="right") - 1]
    keep, capacity = contact_rules(row_member, cols["offer_code"][index], plan.offer_codes,
                                   contacts, policy, channel=plan.channel)  # fmt: skip
    if closed_campaigns:
        closed = [i for i, c in enumerate(plan.campaign_ids) if c in closed_campaigns]
        keep &= ~np.isin(cols["campaign_code"][index], closed)
    index, row_member, capacity = index[keep], row_member[keep], capacity[keep]
    list_rows, rules, first = _arbitration(plan, index, row_member, capacity, policy)
    n_campaigns = len(plan.campaign_ids)
    limits = budgets or Budgets(np.full((n_campaigns, 3), np.inf))
    priority = cols["priority"][index]
    p = cols["p_redeem"][index]
    use = np.column_stack([p, list_rows.cost, np.ones(index.size)])
    allocation = allocate(list_rows, priority, use, rules, limits, lp_members=lp_members,
                          seed=policy.seed, prices=prices)  # fmt: skip
    member_ids = row_member[first]
    budgeted = np.array([policy.campaign(c).is_set for c in plan.campaign_ids] or [False])
    last, allowed = _exploration_pool(list_rows, rules, allocation.chosen, budgeted)
    share = policy.exploration.share
    explored = explore(
        list_rows.member, cols["odds"][index] if share > 0 else np.zeros(index.size),
        allocation.chosen, last, allowed, share=share, n_members=list_rows.n_members,
        rng=draws or member_draws(prefix, member_ids, policy.seed),
    )  # fmt: skip
    chosen = np.flatnonzero(explored.chosen)
    picked, owners = index[chosen], list_rows.member[chosen]
    starts = np.r_[0, np.flatnonzero(owners[1:] != owners[:-1]) + 1] if chosen.size else chosen
    rank = np.arange(chosen.size) - np.repeat(starts, np.diff(np.r_[starts, chosen.size])) + 1
    was_explored = explored.explored[chosen]
    track = ["explore" if e else str(t) for e, t in zip(was_explored.tolist(),
                                                        cols["track"][picked].tolist(),
                                                        strict=True)]  # fmt: skip
    return Picks(
        rows=picked,
        member_ids=member_ids[owners],
        rank=rank.astype(np.int64),
        propensity=explored.propensity[chosen],
        explored=was_explored,
        track=track,
        send_at=send_at(
            at,
            policy.send_lead_hours,
            start=cols["start_date"][picked],
            end=cols["end_date"][picked],
            next_visit=cols["next_visit_date"][picked],
            hour=cols["preferred_hour"][picked],
        ),
        reason=reason(track, cols["reason_core"][picked].tolist()),
        allocation=allocation,
        eligible_rows=int(index.size),
    )
