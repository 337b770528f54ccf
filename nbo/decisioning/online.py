"""One member's decision in well under a millisecond, by the same kernel as a batch run.

An online service keeps a :class:`~nbo.decisioning.plan.Plan` per day, channel and model: every
member's rows through :func:`~nbo.decisioning.prepare.plan_static`, as arrays by member. A
request reads the member's contact history and calls :func:`decide_member`, which runs
:func:`~nbo.decisioning.kernel.decide_plan` on that member's rows: the same rules, code and
exploration draws (keyed by day, channel and member) as ``nbo decide`` for that member.

Club-wide budgets need every member at once; online, a campaign whose budget is spent is passed
in ``closed_campaigns`` and takes no new decisions (what was left of it is shared first come,
first served), and the batch's budget prices, if given, price the member's list.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import polars as pl
from numpy.typing import NDArray

from nbo.decisioning.contacts import ContactArrays, Contacts
from nbo.decisioning.explore import Draws
from nbo.decisioning.kernel import decide_plan
from nbo.decisioning.plan import Plan
from nbo.decisioning.policy import Policy

__all__ = [
    "Contacts",
    "MemberDecision",
    "as_frame",
    "decide_member",
]


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


def decide_member(
    plan: Plan,
    member_id: int,
    policy: Policy,
    *,
    at: datetime,
    contacts: Contacts,
    rng: Draws | None = None,
    model_version: str,
    decision_prefix: str,
    closed_campaigns: frozenset[str] = frozenset(),
    rows: slice | None = None,
    prices: NDArray[np.float64] | None = None,
) -> list[MemberDecision]:
    """``member_id``'s decisions at ``at`` from ``plan``; ranked, best first.

    Decision ids are ``{decision_prefix}-{member_id}-{offer_id}`` and the exploration draws are
    keyed the same way (``rng`` overrides them). ``rows`` overrides the member's slice of the
    plan (a cold-start template shared by members the plan does not know); ``prices`` are the
    batch's budget prices per ``plan.campaign_ids``.
    """
    where = plan.rows_of(member_id) if rows is None else rows
    if where.stop <= where.start:
        return []
    picks = decide_plan(
        plan, policy, at=at, prefix=decision_prefix, rows=where, member_id=member_id,
        contacts=ContactArrays.of_member(member_id, contacts, policy, at=at,
                                         channel=plan.channel),
        prices=prices, closed_campaigns=closed_campaigns, draws=rng,
    )  # fmt: skip
    cols = plan.columns
    out = []
    for i, row in enumerate(picks.rows.tolist()):
        offer_id = str(cols["offer_id"][row])
        out.append(
            MemberDecision(
                decision_id=f"{decision_prefix}-{member_id}-{offer_id}",
                member_id=member_id,
                offer_id=offer_id,
                campaign_id=str(cols["campaign_id"][row]),
                channel=plan.channel,
                rank=int(picks.rank[i]),
                **{name: float(cols[name][row]) for name in _FLOATS},
                uplift_measured=bool(cols["uplift_measured"][row]),
                send_at=picks.send_at[i].item(),
                reason=picks.reason[i],
                propensity=float(picks.propensity[i]),
                explored=bool(picks.explored[i]),
                track=picks.track[i],
                cold_start=bool(cols["cold_start"][row]),
                model_version=model_version,
                decided_at=at,
            )
        )
    return out


_FLOATS = ("p_redeem", "p_buy", "uplift", "value", "cost", "expected_value", "expected_cost",
           "incremental_value", "priority")  # fmt: skip


def as_frame(decisions: list[MemberDecision], schema: Mapping[str, pl.DataType]) -> pl.DataFrame:
    """Decisions as a polars frame with ``schema`` (the engine's DECISION_COLUMNS types)."""
    rows = [{name: getattr(d, name) for name in schema} for d in decisions]
    return (
        pl.DataFrame(rows, schema=dict(schema), orient="row")
        if rows
        else pl.DataFrame(schema=dict(schema))
    )
