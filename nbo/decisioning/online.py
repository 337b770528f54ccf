"""One member's decision in well under a millisecond: the engine's rules on plain arrays.

An online service builds a :class:`Plan` once per day, channel and model: every member's rows
through :func:`~nbo.decisioning.prepare.plan_static` (eligibility, tracks, economics), ordered as
the engine orders them and held as NumPy arrays with a per-member offset. A request then reads
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

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import numpy as np
import polars as pl
from numpy.typing import NDArray

from nbo.decisioning.explore import explore
from nbo.decisioning.policy import Policy
from nbo.decisioning.present import REASON_PREFIX, reason_core
from nbo.decisioning.select import ListRules, Rows, greedy_select

__all__ = ["Contacts", "MemberDecision", "Plan", "as_frame", "decide_member"]

_PLAN_COLUMNS = (
    "offer_id", "campaign_id", "category", "is_new", "p_redeem", "expected_value",
    "expected_cost", "priority", "cost_cap", "track", "cold_start", "start_date", "end_date",
    "next_visit_date", "preferred_hour", "reason_core",
)  # fmt: skip
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
    expected_value: float
    expected_cost: float
    priority: float
    send_at: datetime
    reason: str
    propensity: float
    explored: bool
    track: str
    cold_start: bool
    model_version: str
    decided_at: datetime


@dataclass(frozen=True)
class Plan:
    """plan_static rows of every member for one day and channel, as arrays by member.

    Rows are ordered by member, then priority (highest first), then offer id — the engine's
    order — so a member's rows are ``starts[i]:starts[i + 1]`` for ``member_ids[i]``.
    """

    day: date
    channel: str
    member_ids: NDArray[np.int64]
    starts: NDArray[np.int64]
    columns: dict[str, NDArray[Any]]
    odds: dict[str, float]

    @staticmethod
    def build(
        static: pl.DataFrame, *, day: date, channel: str, odds: pl.DataFrame | None = None
    ) -> Plan:
        """From :func:`~nbo.decisioning.prepare.plan_static` rows (collected) of one day."""
        frame = static.with_columns(reason_core()).sort(
            ["member_id", "priority", "offer_id"], descending=[False, True, False]
        )
        members = frame["member_id"].to_numpy().astype(np.int64)
        member_ids, first = np.unique(members, return_index=True)
        starts = np.r_[first, members.size].astype(np.int64)
        columns: dict[str, NDArray[Any]] = {}
        for name in _PLAN_COLUMNS:
            series = frame[name]
            if series.dtype == pl.String or series.dtype in (pl.Date, pl.Datetime):
                columns[name] = np.array(series.to_list(), dtype=object)
            elif series.dtype == pl.Boolean:
                columns[name] = series.fill_null(False).to_numpy()
            elif name == "preferred_hour":
                columns[name] = np.array(series.to_list(), dtype=object)
            else:
                columns[name] = series.cast(pl.Float64).to_numpy()
        table = {} if odds is None else dict(zip(odds["offer_id"], odds["odds"], strict=True))
        return Plan(day, channel, member_ids, starts, columns, table)

    def rows_of(self, member_id: int) -> slice:
        """The slice of ``member_id``'s rows (empty when the plan has none)."""
        i = int(np.searchsorted(self.member_ids, member_id))
        if i < self.member_ids.size and self.member_ids[i] == member_id:
            return slice(int(self.starts[i]), int(self.starts[i + 1]))
        return slice(0, 0)

    def __contains__(self, member_id: object) -> bool:
        return isinstance(member_id, int) and self.rows_of(member_id).stop > 0

    @property
    def rows(self) -> int:
        return int(self.starts[-1])


def _dense(values: Iterable[Any]) -> NDArray[np.int64]:
    codes: dict[Any, int] = {}
    return np.array([codes.setdefault(v, len(codes)) for v in values], dtype=np.int64)


def _send_at(
    at: datetime, start: date, end: date, next_visit: date | None, hour: int | None, lead: int
) -> datetime:
    """As :func:`~nbo.decisioning.present.send_at`, for one row."""
    first_day = max(at.date(), start)
    day = min(max(next_visit if next_visit is not None else first_day, first_day), end)
    chosen_hour = min(max((hour if hour is not None else at.hour + lead) - lead, 0), 23)
    moment = datetime.combine(day, datetime.min.time()) + timedelta(hours=chosen_hour)
    return max(moment, at)


def _contact_mask(
    offers: NDArray[Any], contacts: Contacts, policy: Policy, at: datetime, channel: str
) -> tuple[NDArray[np.bool_], int]:
    """Rows the contact policy allows, and the member's capacity (as ``with_contacts``)."""
    contact = policy.contact
    last_sent: dict[str, datetime] = {}
    period_start = at - timedelta(days=contact.period_days)
    in_period = 0
    for offer_id, sent_channel, decided_at in contacts.sent:
        if decided_at >= at:
            continue
        if decided_at > last_sent.get(offer_id, datetime.min):
            last_sent[offer_id] = decided_at
        if sent_channel == channel and decided_at >= period_start:
            in_period += 1
    cap = contact.max_offers.get(channel)
    capacity = policy.slots if cap is None else min(policy.slots, cap - in_period)
    capacity = max(capacity, 0)
    keep = np.ones(offers.size, dtype=bool)
    if capacity == 0:
        return keep & False, 0
    suppress = contact.suppress_after_ignored
    for i, offer_id in enumerate(offers):
        ignored, redeemed = contacts.offer_events.get(offer_id, (0, False))
        sent = last_sent.get(offer_id)
        if (
            redeemed
            or (sent is not None and (at - sent).total_seconds() / _DAY < contact.cooldown_days)
            or (suppress is not None and ignored >= suppress)
        ):
            keep[i] = False
    return keep, capacity


def decide_member(
    plan: Plan,
    member_id: int,
    policy: Policy,
    *,
    at: datetime,
    contacts: Contacts,
    rng: np.random.Generator,
    model_version: str,
    decision_prefix: str,
    closed_campaigns: frozenset[str] = frozenset(),
    rows: slice | None = None,
) -> list[MemberDecision]:
    """``member_id``'s decisions at ``at`` from ``plan``; ranked, best first.

    ``rng`` draws the exploration coin and sample exactly as the engine does for a one-member
    run (``default_rng([policy.seed, crc32(run_id)])`` there); decision ids are
    ``{decision_prefix}-{member_id}-{offer_id}``. ``rows`` overrides the member's slice of the
    plan (a cold-start template shared by members the plan does not know).
    """
    where = plan.rows_of(member_id) if rows is None else rows
    c = {name: values[where] for name, values in plan.columns.items()}
    keep, capacity = _contact_mask(c["offer_id"], contacts, policy, at, plan.channel)
    if closed_campaigns:
        keep &= np.array([cid not in closed_campaigns for cid in c["campaign_id"]], dtype=bool)
    index = np.flatnonzero(keep)
    if index.size == 0:
        return []
    c = {name: values[index] for name, values in c.items()}
    n = index.size
    member = np.zeros(n, dtype=np.int64)
    category = _dense(v if v is not None else "" for v in c["category"])
    campaign_ids = sorted(set(c["campaign_id"]))
    campaign = np.array([campaign_ids.index(v) for v in c["campaign_id"]], dtype=np.int64)
    cost = c["expected_cost"].astype(np.float64)
    table = Rows(member, category, campaign, campaign, c["is_new"].astype(bool), cost, 1)
    capacity_arr = np.array([capacity], dtype=np.int64)
    cost_cap = float(c["cost_cap"][0])
    rules = ListRules(
        capacity=capacity_arr,
        new_slots=np.minimum(policy.new_slots(), capacity_arr),
        cost_cap=np.array([cost_cap]),
        max_per_category=policy.diversity.max_per_category,
        max_per_campaign=policy.diversity.max_per_campaign or policy.slots,
    )
    chosen = greedy_select(table, c["priority"].astype(np.float64), rules)

    share = policy.exploration.share
    chosen_idx = np.flatnonzero(chosen)
    last = np.zeros(n, dtype=bool)
    if chosen_idx.size >= capacity:
        last[chosen_idx[-1]] = True
    kept = chosen & ~last
    in_category = np.bincount(category[kept], minlength=int(category.max()) + 1)
    in_campaign = np.bincount(campaign[kept], minlength=int(campaign.max()) + 1)
    budgeted = np.array([policy.campaign(cid).is_set for cid in campaign_ids], dtype=bool)
    cost_used = float(cost[kept].sum())
    allowed = (
        ~chosen
        & (in_category[category] < rules.max_per_category)
        & (in_campaign[campaign] < rules.max_per_campaign)
        & ~budgeted[campaign]
        & (cost <= cost_cap - cost_used + 1e-12)
    )
    odds = np.array([plan.odds.get(o, 0.0) for o in c["offer_id"]]) if share > 0 else np.zeros(n)
    explored = explore(member, odds, chosen, last, allowed, share=share, n_members=1, rng=rng)
    picked = np.flatnonzero(explored.chosen)
    out: list[MemberDecision] = []
    lead = policy.send_lead_hours
    for rank, i in enumerate(picked, start=1):
        was_explored = bool(explored.explored[i])
        track = "explore" if was_explored else str(c["track"][i])
        hour = c["preferred_hour"][i]
        out.append(
            MemberDecision(
                decision_id=f"{decision_prefix}-{member_id}-{c['offer_id'][i]}",
                member_id=member_id,
                offer_id=str(c["offer_id"][i]),
                campaign_id=str(c["campaign_id"][i]),
                channel=plan.channel,
                rank=rank,
                p_redeem=float(c["p_redeem"][i]),
                expected_value=float(c["expected_value"][i]),
                expected_cost=float(c["expected_cost"][i]),
                priority=float(c["priority"][i]),
                send_at=_send_at(
                    at,
                    c["start_date"][i],
                    c["end_date"][i],
                    c["next_visit_date"][i],
                    None if hour is None else int(hour),
                    lead,
                ),
                reason=REASON_PREFIX.get(track, "") + str(c["reason_core"][i]),
                propensity=float(explored.propensity[i]),
                explored=was_explored,
                track=track,
                cold_start=bool(c["cold_start"][i]),
                model_version=model_version,
                decided_at=at,
            )
        )
    return out


def as_frame(decisions: list[MemberDecision], schema: Mapping[str, pl.DataType]) -> pl.DataFrame:
    """Decisions as a polars frame with ``schema`` (the engine's DECISION_COLUMNS types)."""
    rows = [{name: getattr(d, name) for name in schema} for d in decisions]
    return (
        pl.DataFrame(rows, schema=dict(schema), orient="row")
        if rows
        else pl.DataFrame(schema=dict(schema))
    )
