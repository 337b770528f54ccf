"""One member's decision in well under a millisecond: the engine's rules on plain arrays.

An online service builds a :class:`~nbo.decisioning.plan.Plan` once per day, channel and
model: every member's rows through :func:`~nbo.decisioning.prepare.plan_static` (eligibility,
tracks, economics), ordered as the engine orders them and held as NumPy arrays with a
per-member offset. A request then reads
the member's contact history and calls :func:`decide_member`, which applies the contact policy,
fills the list with :func:`~nbo.decisioning.select.greedy_select`, explores with
:func:`~nbo.decisioning.explore.explore` and dresses each decision with its send time and
reason — the same rules and the same random draws as :func:`~nbo.decisioning.engine.
decide_prepared` on that member's rows (a property test holds the two equal), without the fixed
cost of polars queries on a frame of a dozen rows.

Club-wide budgets need every member at once; online, a campaign whose budget is spent is passed
in ``closed_campaigns`` and takes no new decisions (what was left of it is shared first come,
first served).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import numpy as np
import polars as pl
from numpy.typing import NDArray

from nbo.decisioning.explore import Draws, explore
from nbo.decisioning.plan import Plan
from nbo.decisioning.policy import Policy
from nbo.decisioning.present import REASON_PREFIX
from nbo.decisioning.select import ListRules

__all__ = [
    "Contacts",
    "MemberDecision",
    "as_frame",
    "decide_member",
]

_DAY = 86_400.0


@dataclass(frozen=True)
class Contacts:
    """One member's contact history as plain rows (what ``InteractionStore`` reads per member).

    ``sent``: (offer_id, channel, decided_at) of decisions made before ``at``;
    ``offer_events``: offer_id → (ignored, redeemed) from the events before ``at``.
    """

    sent: list[tuple[str, str, datetime]]
    offer_events: dict[str, tuple[int, bool]]

    @staticmethod
    def none() -> Contacts:
        return Contacts([], {})


@dataclass(frozen=True)
class MemberDecision:
    """One decided offer, with the engine's decision columns."""

    decision_id: str
    member_id: int
    offer_id: str
    campaign_id: str
    channel: str
    rank: int
    p_redeem: float
    p_buy: float
    uplift: float
    uplift_measured: bool
    value: float
    cost: float
    expected_value: float
    expected_cost: float
    incremental_value: float
    priority: float
    send_at: datetime
    reason: str
    propensity: float
    explored: bool
    track: str
    cold_start: bool
    model_version: str
    decided_at: datetime


def _send_at(
    at: datetime, start: date, end: date, next_visit: date | None, hour: int | None, lead: int
) -> datetime:
    """As :func:`~nbo.decisioning.present.send_at`, for one row."""
    first_day = max(at.date(), start)
    day = min(max(next_visit if next_visit is not None else first_day, first_day), end)
    chosen_hour = min(max((hour if hour is not None else at.hour + lead) - lead, 0), 23)
    moment = datetime.combine(day, datetime.min.time()) + timedelta(hours=chosen_hour)
    return max(moment, at)


def _blocked(plan: Plan, contacts: Contacts, policy: Policy, at: datetime) -> tuple[list[int], int]:
    """Offer codes the contact policy blocks, and the member's capacity (as ``with_contacts``)."""
    contact = policy.contact
    last_sent: dict[str, datetime] = {}
    period_start = at - timedelta(days=contact.period_days)
    in_period = 0
    for offer_id, sent_channel, decided_at in contacts.sent:
        if decided_at >= at:
            continue
        if decided_at > last_sent.get(offer_id, datetime.min):
            last_sent[offer_id] = decided_at
        if sent_channel == plan.channel and decided_at >= period_start:
            in_period += 1
    cap = contact.max_offers.get(plan.channel)
    capacity = max(policy.slots if cap is None else min(policy.slots, cap - in_period), 0)
    blocked = {
        offer_id
        for offer_id, sent in last_sent.items()
        if (at - sent).total_seconds() / _DAY < contact.cooldown_days
    }
    suppress = contact.suppress_after_ignored
    for offer_id, (ignored, redeemed) in contacts.offer_events.items():
        if redeemed or (suppress is not None and ignored >= suppress):
            blocked.add(offer_id)
    codes = [plan.offer_codes[o] for o in blocked if o in plan.offer_codes]
    return codes, capacity


def _fill_list(
    priority: NDArray[np.float64],
    category: NDArray[np.int64],
    campaign: NDArray[np.int64],
    is_new: NDArray[np.bool_],
    cost: NDArray[np.float64],
    rules: ListRules,
) -> list[int]:
    """:func:`~nbo.decisioning.select.greedy_select` for one member's rows, in plain Python.

    The rows are in priority order, so each round's best fitting row is the first that fits
    (a discovery round: the first new-to-member row that fits, if one does). A dozen rows in
    Python lists cost a fraction of NumPy's per-call overhead on arrays that small.
    """
    scores, cats, camps = priority.tolist(), category.tolist(), campaign.tolist()
    news, costs = is_new.tolist(), cost.tolist()
    capacity = int(rules.capacity[0])
    new_room = min(int(rules.new_slots[0]), capacity)
    cost_left = float(rules.cost_cap[0])
    per_category: dict[int, int] = {}
    per_campaign: dict[int, int] = {}
    picked: list[int] = []
    usable = [math.isfinite(p) and p > 0 for p in scores]
    for _ in range(capacity):
        first = first_new = None
        for i, ok in enumerate(usable):
            if (
                not ok
                or per_category.get(cats[i], 0) >= rules.max_per_category
                or per_campaign.get(camps[i], 0) >= rules.max_per_campaign
                or costs[i] > cost_left + 1e-12
            ):
                continue
            if first is None:
                first = i
            if news[i]:
                first_new = i
                break
        wants_new = new_room > 0
        take = first_new if wants_new and first_new is not None else first
        if take is None:
            break
        picked.append(take)
        usable[take] = False
        if news[take]:
            new_room -= 1
        if wants_new and first_new is None:  # no new row fits: the discovery slot is given up
            new_room = 0
        cost_left -= costs[take]
        per_category[cats[take]] = per_category.get(cats[take], 0) + 1
        per_campaign[camps[take]] = per_campaign.get(camps[take], 0) + 1
    return sorted(picked)


def decide_member(
    plan: Plan,
    member_id: int,
    policy: Policy,
    *,
    at: datetime,
    contacts: Contacts,
    rng: Draws | np.random.Generator,
    model_version: str,
    decision_prefix: str,
    closed_campaigns: frozenset[str] = frozenset(),
    rows: slice | None = None,
) -> list[MemberDecision]:
    """``member_id``'s decisions at ``at`` from ``plan``; ranked, best first.

    ``rng`` draws the exploration coin and sample: with ``default_rng([policy.seed,
    crc32(run_id)])`` exactly as the engine does for a one-member run; a service passes
    :class:`HashDraws` (no generator to seed for most members); decision ids are
    ``{decision_prefix}-{member_id}-{offer_id}``. ``rows`` overrides the member's slice of the
    plan (a cold-start template shared by members the plan does not know).
    """
    where = plan.rows_of(member_id) if rows is None else rows
    if where.stop <= where.start:
        return []
    blocked, capacity = _blocked(plan, contacts, policy, at)
    if capacity == 0:
        return []
    cols = plan.columns
    index = np.arange(where.start, where.stop)
    if blocked:
        index = index[~np.isin(cols["offer_code"][where], blocked)]
    if closed_campaigns:
        closed = [i for i, cid in enumerate(plan.campaign_ids) if cid in closed_campaigns]
        index = index[~np.isin(cols["campaign_code"][index], closed)]
    n = index.size
    if n == 0:
        return []
    member = np.zeros(n, dtype=np.int64)
    category = cols["category_code"][index]
    campaign = cols["campaign_code"][index]
    cost = cols["expected_cost"][index]
    is_new = cols["is_new"][index]
    cost_cap = float(cols["cost_cap"][index[0]])
    rules = ListRules(
        capacity=np.array([capacity], dtype=np.int64),
        new_slots=np.array([min(policy.new_slots(), capacity)], dtype=np.int64),
        cost_cap=np.array([cost_cap]),
        max_per_category=policy.diversity.max_per_category,
        max_per_campaign=policy.diversity.max_per_campaign or policy.slots,
    )
    chosen = np.zeros(n, dtype=bool)
    chosen[_fill_list(cols["priority"][index], category, campaign, is_new, cost, rules)] = True

    share = policy.exploration.share
    chosen_idx = np.flatnonzero(chosen)
    last = np.zeros(n, dtype=bool)
    if chosen_idx.size >= capacity:
        last[chosen_idx[-1]] = True
    kept = chosen & ~last
    in_category = np.bincount(category[kept], minlength=int(category.max()) + 1)
    in_campaign = np.bincount(campaign[kept], minlength=int(campaign.max()) + 1)
    budgeted = np.array(
        [policy.campaign(cid).is_set for cid in plan.campaign_ids[: int(campaign.max()) + 1]],
        dtype=bool,
    )
    allowed = (
        ~chosen
        & (in_category[category] < rules.max_per_category)
        & (in_campaign[campaign] < rules.max_per_campaign)
        & ~budgeted[campaign]
        & (cost <= cost_cap - float(cost[kept].sum()) + 1e-12)
    )
    odds = cols["odds"][index] if share > 0 else np.zeros(n)
    explored = explore(member, odds, chosen, last, allowed, share=share, n_members=1, rng=rng)
    return [
        _decision(plan, int(index[i]), rank, member_id, policy, at, model_version,
                  decision_prefix, bool(explored.explored[i]), float(explored.propensity[i]))
        for rank, i in enumerate(np.flatnonzero(explored.chosen), start=1)
    ]  # fmt: skip


def _decision(
    plan: Plan,
    row: int,
    rank: int,
    member_id: int,
    policy: Policy,
    at: datetime,
    model_version: str,
    prefix: str,
    explored: bool,
    propensity: float,
) -> MemberDecision:
    cols = plan.columns
    offer_id = str(cols["offer_id"][row])
    track = "explore" if explored else str(cols["track"][row])
    hour = cols["preferred_hour"][row]
    return MemberDecision(
        decision_id=f"{prefix}-{member_id}-{offer_id}",
        member_id=member_id,
        offer_id=offer_id,
        campaign_id=str(cols["campaign_id"][row]),
        channel=plan.channel,
        rank=rank,
        p_redeem=float(cols["p_redeem"][row]),
        p_buy=float(cols["p_buy"][row]),
        uplift=float(cols["uplift"][row]),
        uplift_measured=bool(cols["uplift_measured"][row]),
        value=float(cols["value"][row]),
        cost=float(cols["cost"][row]),
        expected_value=float(cols["expected_value"][row]),
        expected_cost=float(cols["expected_cost"][row]),
        incremental_value=float(cols["incremental_value"][row]),
        priority=float(cols["priority"][row]),
        send_at=_send_at(
            at,
            cols["start_date"][row],
            cols["end_date"][row],
            cols["next_visit_date"][row],
            None if hour is None else int(hour),
            policy.send_lead_hours,
        ),
        reason=REASON_PREFIX.get(track, "") + str(cols["reason_core"][row]),
        propensity=propensity,
        explored=explored,
        track=track,
        cold_start=bool(cols["cold_start"][row]),
        model_version=model_version,
        decided_at=at,
    )


def as_frame(decisions: list[MemberDecision], schema: Mapping[str, pl.DataType]) -> pl.DataFrame:
    """Decisions as a polars frame with ``schema`` (the engine's DECISION_COLUMNS types)."""
    rows = [{name: getattr(d, name) for name in schema} for d in decisions]
    return (
        pl.DataFrame(rows, schema=dict(schema), orient="row")
        if rows
        else pl.DataFrame(schema=dict(schema))
    )
