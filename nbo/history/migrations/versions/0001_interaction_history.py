"""Interaction history: the decisions and events tables.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create ``decisions`` and ``events`` with their indexes."""
    op.create_table(
        "decisions",
        sa.Column("decision_id", sa.String(64), nullable=False),
        sa.Column("member_id", sa.BigInteger(), nullable=False),
        sa.Column("offer_id", sa.String(), nullable=False),
        sa.Column("campaign_id", sa.String(), nullable=True),
        sa.Column("channel", sa.String(), nullable=False),
        sa.Column("decided_at", sa.DateTime(), nullable=False),
        sa.Column("send_at", sa.DateTime(), nullable=True),
        sa.Column("rank", sa.Integer(), nullable=False),
        sa.Column("p_redeem", sa.Float(), nullable=False),
        sa.Column("expected_value", sa.Float(), nullable=False),
        sa.Column("expected_cost", sa.Float(), nullable=True),
        sa.Column("propensity", sa.Float(), nullable=False),
        sa.Column("explored", sa.Boolean(), nullable=False),
        sa.Column("track", sa.String(), nullable=True),
        sa.Column("arm", sa.String(), nullable=True),
        sa.Column("model_version", sa.String(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("decision_id", name=op.f("pk_decisions")),
    )
    op.create_index(
        op.f("ix_decisions_member_id_decided_at"), "decisions", ["member_id", "decided_at"]
    )
    op.create_table(
        "events",
        sa.Column("event_id", sa.String(64), nullable=False),
        sa.Column("event_type", sa.String(), nullable=False),
        sa.Column("member_id", sa.BigInteger(), nullable=False),
        sa.Column("offer_id", sa.String(), nullable=False),
        sa.Column("decision_id", sa.String(), nullable=True),
        sa.Column("channel", sa.String(), nullable=True),
        sa.Column("ts", sa.DateTime(), nullable=False),
        sa.Column("received_at", sa.DateTime(), nullable=False),
        sa.CheckConstraint(
            "event_type IN ('exposure', 'click', 'redemption', 'dismissal')",
            name=op.f("ck_events_event_type"),
        ),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_events")),
    )
    op.create_index(
        op.f("ix_events_member_id_offer_id_ts"), "events", ["member_id", "offer_id", "ts"]
    )


def downgrade() -> None:
    """Drop both tables."""
    op.drop_index(op.f("ix_events_member_id_offer_id_ts"), table_name="events")
    op.drop_table("events")
    op.drop_index(op.f("ix_decisions_member_id_decided_at"), table_name="decisions")
    op.drop_table("decisions")
