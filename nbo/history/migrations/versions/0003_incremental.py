"""Decisions record what the offer changes: p_buy, uplift (measured or assumed), the value of a
purchase, the cost of a redemption and the expected incremental value.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_FLOATS = ("p_buy", "uplift", "value", "cost", "incremental_value")


def upgrade() -> None:
    """Add the columns, nullable: rows decided before them keep null."""
    with op.batch_alter_table("decisions") as batch:
        for name in _FLOATS[:2]:
            batch.add_column(sa.Column(name, sa.Float(), nullable=True))
        batch.add_column(sa.Column("uplift_measured", sa.Boolean(), nullable=True))
        for name in _FLOATS[2:]:
            batch.add_column(sa.Column(name, sa.Float(), nullable=True))


def downgrade() -> None:
    """Drop them again."""
    with op.batch_alter_table("decisions") as batch:
        for name in ("incremental_value", "cost", "value", "uplift_measured", "uplift", "p_buy"):
            batch.drop_column(name)
