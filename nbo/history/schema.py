"""Tables of the interaction history store: decisions made and events seen.

Times are naive UTC (``DateTime`` without time zone) on every backend. The alembic migrations in
``nbo/history/migrations`` create these tables; this module is what code and autogenerate read.
``member_id`` is indexed as the leading column of the composite indexes (a second index on it
alone would only slow the bulk inserts).
"""

from __future__ import annotations

import polars as pl
from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    ColumnElement,
    DateTime,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    true,
)

__all__ = [
    "ARMS",
    "DECISION_COLUMNS",
    "DECISION_DEFAULTS",
    "DECISION_SCHEMA",
    "EVENT_COLUMNS",
    "EVENT_SCHEMA",
    "EVENT_TYPES",
    "REQUIRED_DECISION_COLUMNS",
    "assignments",
    "decisions",
    "delivered",
    "events",
    "metadata",
]

EVENT_TYPES = ("exposure", "click", "redemption", "dismissal")
"""The kinds of interaction event a member can have with an offer."""

# stable constraint and index names, so later migrations can refer to them on every backend
metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "pk": "pk_%(table_name)s",
    }
)

decisions = Table(
    "decisions",
    metadata,
    Column("decision_id", String(64), primary_key=True),
    Column("member_id", BigInteger, nullable=False),
    Column("offer_id", String, nullable=False),
    Column("campaign_id", String, nullable=True),
    Column("channel", String, nullable=False),
    Column("decided_at", DateTime, nullable=False),
    Column("send_at", DateTime, nullable=True),
    Column("rank", Integer, nullable=False),
    Column("p_redeem", Float, nullable=False),
    Column("expected_value", Float, nullable=False),
    Column("expected_cost", Float, nullable=True),
    Column("propensity", Float, nullable=False),
    Column("explored", Boolean, nullable=False),
    Column("track", String, nullable=True),
    Column("arm", String, nullable=True),
    Column("model_version", String, nullable=False),
    Column("reason", Text, nullable=True),
    # what the offer changes (migration 0003; null on older rows)
    Column("p_buy", Float, nullable=True),
    Column("uplift", Float, nullable=True),
    Column("uplift_measured", Boolean, nullable=True),
    Column("value", Float, nullable=True),
    Column("cost", Float, nullable=True),
    Column("incremental_value", Float, nullable=True),
    # false: decided but not sent, the would-be offer of a holdout member (migration 0004)
    Column("delivered", Boolean, nullable=False, server_default=true()),
    Index(None, "member_id", "decided_at"),
)

events = Table(
    "events",
    metadata,
    Column("event_id", String(64), primary_key=True),
    Column("event_type", String, nullable=False),
    Column("member_id", BigInteger, nullable=False),
    Column("offer_id", String, nullable=False),
    Column("decision_id", String, nullable=True),
    Column("channel", String, nullable=True),
    Column("ts", DateTime, nullable=False),
    Column("received_at", DateTime, nullable=False),
    Column("amount", Float, nullable=True),
    CheckConstraint(
        "event_type IN ({})".format(", ".join(f"'{t}'" for t in EVENT_TYPES)),
        name="event_type",
    ),
    Index(None, "member_id", "offer_id", "ts"),
)

assignments = Table(
    "assignments",
    metadata,
    Column("member_id", BigInteger, primary_key=True),
    Column("arm", String(16), nullable=False),
    Column("assigned_at", DateTime, nullable=False),
)
"""The experiment arm each member was first served in (champion, challenger or holdout)."""

ARMS = ("champion", "challenger", "holdout")

DECISION_SCHEMA = pl.Schema(
    {
        "decision_id": pl.String(),
        "member_id": pl.Int64(),
        "offer_id": pl.String(),
        "campaign_id": pl.String(),
        "channel": pl.String(),
        "decided_at": pl.Datetime("us"),
        "send_at": pl.Datetime("us"),
        "rank": pl.Int32(),
        "p_redeem": pl.Float64(),
        "expected_value": pl.Float64(),
        "expected_cost": pl.Float64(),
        "propensity": pl.Float64(),
        "explored": pl.Boolean(),
        "track": pl.String(),
        "arm": pl.String(),
        "model_version": pl.String(),
        "reason": pl.String(),
        "p_buy": pl.Float64(),
        "uplift": pl.Float64(),
        "uplift_measured": pl.Boolean(),
        "value": pl.Float64(),
        "cost": pl.Float64(),
        "incremental_value": pl.Float64(),
        "delivered": pl.Boolean(),
    }
)
"""Polars types of the ``decisions`` columns, in table order."""

EVENT_SCHEMA = pl.Schema(
    {
        "event_id": pl.String(),
        "event_type": pl.String(),
        "member_id": pl.Int64(),
        "offer_id": pl.String(),
        "decision_id": pl.String(),
        "channel": pl.String(),
        "ts": pl.Datetime("us"),
        "received_at": pl.Datetime("us"),
        "amount": pl.Float64(),
    }
)
"""Polars types of the ``events`` columns, in table order."""

DECISION_COLUMNS = tuple(DECISION_SCHEMA.names())
EVENT_COLUMNS = tuple(EVENT_SCHEMA.names())
REQUIRED_DECISION_COLUMNS = tuple(
    c.name for c in decisions.columns if not c.nullable and c.server_default is None
)
"""Columns a decision must give; ``delivered`` defaults to true."""
DECISION_DEFAULTS: dict[str, bool] = {"delivered": True}
"""Values of the decisions columns a row may leave out or null instead of null."""


def delivered() -> ColumnElement[bool]:
    """The one rule of what counts as sent: decisions ``delivered`` to the member.

    Contact rules, budgets, the experiment report and off-policy evaluation read only these; a
    holdout member's would-be offers (``delivered`` false) are randomized exposure for the
    uplift model (:mod:`nbo.history.exposure`) and nothing else.
    """
    return decisions.c.delivered.is_(true())
