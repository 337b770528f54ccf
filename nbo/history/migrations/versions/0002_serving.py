"""Serving: experiment arm assignments, and the money amount of an event.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add ``assignments`` and ``events.amount``."""
    op.create_table(
        "assignments",
        sa.Column("member_id", sa.BigInteger(), nullable=False),
        sa.Column("arm", sa.String(16), nullable=False),
        sa.Column("assigned_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("member_id", name=op.f("pk_assignments")),
    )
    with op.batch_alter_table("events") as batch:
        batch.add_column(sa.Column("amount", sa.Float(), nullable=True))


def downgrade() -> None:
    """Drop them again."""
    with op.batch_alter_table("events") as batch:
        batch.drop_column("amount")
    op.drop_table("assignments")
