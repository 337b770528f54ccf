"""The logged decisions, arm assignments and redemption events, read in bulk for evaluation
(off-policy evaluation and the experiment report). Plain polars frames out; nothing here knows
how they are evaluated (``nbo.evaluation`` does, and never imports the history: the CLI hands
these frames over).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Any

import polars as pl
from sqlalchemy import Engine, Select, func, select

from nbo.history.schema import DECISION_SCHEMA, assignments, decisions, delivered, events

__all__ = [
    "REDEMPTION_SCHEMA",
    "ExperimentLog",
    "experiment_log",
    "logged_decisions",
    "redemption_events",
]

REDEMPTION_SCHEMA = pl.Schema(
    {
        "member_id": pl.Int64(),
        "offer_id": pl.String(),
        "campaign_id": pl.String(),
        "decision_id": pl.String(),
        "ts": pl.Datetime("us"),
        "amount": pl.Float64(),
    }
)
"""Columns of :func:`redemption_events`."""
_ASSIGNMENT_SCHEMA = pl.Schema(
    {"member_id": pl.Int64(), "arm": pl.String(), "assigned_at": pl.Datetime("us")}
)
_DECISION_COUNT_SCHEMA = pl.Schema({"member_id": pl.Int64(), "decisions": pl.Int64()})


def logged_decisions(
    engine: Engine, since: datetime | None = None, *, batch_only: bool = False
) -> pl.DataFrame:
    """Every decision delivered at or after ``since`` (all if None), oldest first.

    A holdout member's would-be offers are left out: nothing was sent, so nothing can follow.

    ``batch_only`` keeps the decisions of batch runs (``nbo decide``: no experiment arm).
    """
    d = decisions.c
    query = select(decisions).where(delivered()).order_by(d.decided_at, d.member_id, d.rank)
    if since is not None:
        query = query.where(d.decided_at >= since)
    if batch_only:
        query = query.where(d.arm.is_(None))
    return _read(engine, query, DECISION_SCHEMA)


def redemption_events(engine: Engine, since: datetime | None = None) -> pl.DataFrame:
    """Redemption events at or after ``since``, with the campaign of their offer (from the
    decisions that offered it; null for an offer never decided)."""
    d, e = decisions.c, events.c
    campaigns = (
        select(d.offer_id, func.max(d.campaign_id).label("campaign_id"))
        .group_by(d.offer_id)
        .subquery()
    )
    query = (
        select(e.member_id, e.offer_id, campaigns.c.campaign_id, e.decision_id, e.ts, e.amount)
        .select_from(events.outerjoin(campaigns, campaigns.c.offer_id == e.offer_id))
        .where(e.event_type == "redemption")
        .order_by(e.ts, e.event_id)
    )
    if since is not None:
        query = query.where(e.ts >= since)
    return _read(engine, query, REDEMPTION_SCHEMA)


@dataclass(frozen=True)
class ExperimentLog:
    """What the experiment report reads (``nbo.evaluation.experiment.arm_report``)."""

    assignments: pl.DataFrame
    """member_id, arm, assigned_at: each member's first arm."""
    decisions: pl.DataFrame
    """member_id, decisions: how many offers the service sent the member."""
    redemptions: pl.DataFrame
    """Redemption events (:data:`REDEMPTION_SCHEMA`)."""


def experiment_log(engine: Engine, since: date | None = None) -> ExperimentLog:
    """Arm assignments made on/after ``since`` (all if None), the service's decisions per member
    and the redemption events from ``since`` on.

    Redemptions before ``since`` are left out: they precede every assignment read, and the
    report counts a redemption only at or after its member's assignment.
    """
    a, d = assignments.c, decisions.c
    begin = None if since is None else datetime.combine(since, time())
    assigned = select(a.member_id, a.arm, a.assigned_at).order_by(a.member_id)
    if begin is not None:
        assigned = assigned.where(a.assigned_at >= begin)
    counts = (  # the service's decisions sent (they carry an arm), not batch runs
        select(d.member_id, func.count().label("decisions"))
        .where(d.arm.is_not(None), delivered())
        .group_by(d.member_id)
        .order_by(d.member_id)
    )
    return ExperimentLog(
        assignments=_read(engine, assigned, _ASSIGNMENT_SCHEMA),
        decisions=_read(engine, counts, _DECISION_COUNT_SCHEMA),
        redemptions=redemption_events(engine, begin),
    )


def _read(engine: Engine, query: Select[Any], schema: pl.Schema) -> pl.DataFrame:
    with engine.connect() as connection:
        rows = connection.execute(query).all()
    return pl.DataFrame(rows, schema=schema, orient="row")
