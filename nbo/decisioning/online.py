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

import math
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from hashlib import blake2b
from typing import Any

import numpy as np
import polars as pl
from numpy.typing import NDArray

from nbo.decisioning.explore import Draws, explore
from nbo.decisioning.policy import Policy
from nbo.decisioning.present import REASON_PREFIX, reason_core
from nbo.decisioning.select import ListRules

__all__ = [
    "Contacts",
    "HashDraws",
    "MemberDecision",
    "Plan",
    "as_frame",
    "decide_member",
    "unit_hash",
]

_PLAN_COLUMNS = (
    "offer_id", "campaign_id", "category", "is_new", "p_redeem", "expected_value",
    "expected_cost", "priority", "cost_cap", "track", "cold_start", "start_date", "end_date",
    "next_visit_date", "preferred_hour", "reason_core",
)  # fmt: skip
_DAY = 86_400.0


def unit_hash(key: str) -> float:
    """A uniform number in [0, 1) fixed by ``key``."""
    return int.from_bytes(blake2b(key.encode(), digest_size=8).digest(), "big") / 2.0**64


class HashDraws:
    """Exploration draws for one member and key, cheap in the common case.

    The coin is a hash of ``key``; the Gumbel noise that picks an exploration offer (needed
    only by the members the coin sends exploring) comes from a NumPy generator seeded by
    ``seed`` and ``key``. Deterministic per key, and independent across members and days.
    """

    def __init__(self, key: str, seed: int) -> None:
        self.key = key
        self.seed = seed

    def random(self, size: int) -> NDArray[np.float64]:
        return np.full(size, unit_hash(self.key))

    def gumbel(self, *, size: int) -> NDArray[np.float64]:
        generator = np.random.default_rng([self.seed, zlib.crc32(self.key.encode())])
        return generator.gumbel(size=size)


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
    order — so a member's rows are ``starts[i]:starts[i + 1]`` for ``member_ids[i]``. Offers,
    campaigns and categories are coded once (``offer_code`` …) so a request does no string work
    on rows it does not return.
    """

    day: date
    channel: str
    member_ids: NDArray[np.int64]
    starts: NDArray[np.int64]
    columns: dict[str, NDArray[Any]]
    offer_codes: dict[str, int]
    campaign_ids: list[str]

    @staticmethod
    def build(
        static: pl.DataFrame, *, day: date, channel: str, odds: pl.DataFrame | None = None
    ) -> Plan:
        """From :func:`~nbo.decisioning.prepare.plan_static` rows (collected) of one day;
        ``odds`` (offer_id, odds) are the exploration matching odds."""
        frame = static.with_columns(reason_core()).sort(
            ["member_id", "priority", "offer_id"], descending=[False, True, False]
        )
        if odds is not None:
            frame = frame.join(
                odds.select("offer_id", "odds"), on="offer_id", how="left", maintain_order="left"
            )
        else:
            frame = frame.with_columns(odds=pl.lit(None, pl.Float64))
        frame = frame.with_columns(
            pl.col("odds").fill_null(0.0),
            offer_code=pl.col("offer_id").rank("dense").cast(pl.Int64) - 1,
            campaign_code=pl.col("campaign_id").rank("dense").cast(pl.Int64) - 1,
            category_code=pl.col("category").fill_null("").rank("dense").cast(pl.Int64) - 1,
        )
        members = frame["member_id"].to_numpy().astype(np.int64)
        member_ids, first = np.unique(members, return_index=True)
        starts = np.r_[first, members.size].astype(np.int64)
        columns: dict[str, NDArray[Any]] = {}
        for name in (*_PLAN_COLUMNS, "odds", "offer_code", "campaign_code", "category_code"):
            series = frame[name]
            if series.dtype == pl.Int64 and name.endswith("_code"):
                columns[name] = series.to_numpy()
            elif series.dtype == pl.Boolean:
                columns[name] = series.fill_null(False).to_numpy()
            elif series.dtype in (pl.Float64, pl.Float32):
                columns[name] = series.cast(pl.Float64).to_numpy()
            else:  # strings, dates, nullable hours: Python objects, read only for chosen rows
                columns[name] = np.array(series.to_list(), dtype=object)
        codes = frame.select("offer_id", "offer_code").unique()
        campaigns = frame.select("campaign_id", "campaign_code").unique().sort("campaign_code")
        return Plan(
            day, channel, member_ids, starts, columns,
            offer_codes=dict(codes.iter_rows()),
            campaign_ids=campaigns["campaign_id"].to_list(),
        )  # fmt: skip

    def rows_of(self, member_id: int) -> slice:
        """The slice of ``member_id``'s rows (empty when the plan has none)."""
        i = int(np.searchsorted(self.member_ids, member_id))
        if i < self.member_ids.size and self.member_ids[i] == member_id:
            return slice(int(self.starts[i]), int(self.starts[i + 1]))
        return slice(0, 0)

    @property
    def rows(self) -> int:
        return int(self.starts[-1])


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
        expected_value=float(cols["expected_value"][row]),
        expected_cost=float(cols["expected_cost"][row]),
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
