"""Decisions say whether they were sent: ``delivered`` false marks a holdout member's would-be
offer, recorded as randomized exposure for the uplift model and never counted as a contact.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add ``decisions.delivered``, true on every row decided before it (all were sent)."""
    with op.batch_alter_table("decisions") as batch:
        batch.add_column(
            sa.Column("delivered", sa.Boolean(), nullable=False, server_default=sa.true())
        )


def downgrade() -> None:
    """Drop it again."""
    with op.batch_alter_table("decisions") as batch:
        batch.drop_column("delivered")
