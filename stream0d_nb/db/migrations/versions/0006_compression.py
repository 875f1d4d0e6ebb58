"""Datasets record their chunk compression (lz4 for new datasets; earlier ones were zstd).

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add ``datasets.compression``; existing datasets were written with zstd."""
    # a plain ADD COLUMN: SQLite's batch mode would copy and drop the table, and dropping it
    # would cascade to the channels
    op.add_column(
        "datasets", sa.Column("compression", sa.String(16), nullable=False, server_default="zstd")
    )


def downgrade() -> None:
    """Drop ``datasets.compression``."""
    with op.batch_alter_table("datasets") as batch:
        batch.drop_column("compression")
