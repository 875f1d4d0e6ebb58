"""Recalibration runs record a deadline, past which an unfinished run was abandoned.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add ``recal_runs.deadline`` (NULL for runs recorded before: never ended by it)."""
    op.add_column("recal_runs", sa.Column("deadline", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    """Drop ``recal_runs.deadline``."""
    with op.batch_alter_table("recal_runs") as batch:
        batch.drop_column("deadline")
