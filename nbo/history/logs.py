"""The logged decisions and redemption events, read in bulk for evaluation (off-policy
evaluation and the experiment report). Plain polars frames out; nothing here knows how they
are evaluated.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import polars as pl
from sqlalchemy import Engine, Select, func, select

from nbo.history.schema import DECISION_SCHEMA, decisions, events

__all__ = ["REDEMPTION_SCHEMA", "logged_decisions", "redemption_events"]

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


def logged_decisions(
    engine: Engine, since: datetime | None = None, *, batch_only: bool = False
) -> pl.DataFrame:
    """Every decision made at or after ``since`` (all if None), oldest first.

    ``batch_only`` keeps the decisions of batch runs (``nbo decide``: no experiment arm).
    """
    d = decisions.c
    query = select(decisions).order_by(d.decided_at, d.member_id, d.rank)
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


def _read(engine: Engine, query: Select[Any], schema: pl.Schema) -> pl.DataFrame:
    with engine.connect() as connection:
        rows = connection.execute(query).all()
    return pl.DataFrame(rows, schema=schema, orient="row")
