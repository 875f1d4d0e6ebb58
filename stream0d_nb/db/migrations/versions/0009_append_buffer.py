"""Append buffer: per-dataset state and segments of rows not yet folded into Zarr chunks.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSONType = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    """Create append_state and append_segments (both deleted with their dataset)."""
    op.create_table(
        "append_state",
        sa.Column("dataset_id", sa.String(63), nullable=False),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        sa.Column("fold_gen", sa.Integer(), nullable=False),
        sa.Column("lease_owner", sa.String(64), nullable=True),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("appended_values", sa.BigInteger(), nullable=False),
        sa.Column("folded_values", sa.BigInteger(), nullable=False),
        sa.Column("last_fold_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_fold_snapshot", sa.String(64), nullable=True),
        sa.PrimaryKeyConstraint("dataset_id", name="pk_append_state"),
        sa.ForeignKeyConstraint(
            ["dataset_id"],
            ["datasets.id"],
            name="fk_append_state_dataset_id_datasets",
            ondelete="CASCADE",
        ),
    )
    op.create_table(
        "append_segments",
        sa.Column("dataset_id", sa.String(63), nullable=False),
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("chunk", sa.BigInteger(), nullable=False),
        sa.Column("level", sa.Integer(), nullable=False),
        sa.Column("first_idx", sa.BigInteger(), nullable=False),
        sa.Column("stop_idx", sa.BigInteger(), nullable=False),
        sa.Column("n_values", sa.Integer(), nullable=False),
        sa.Column("appends", sa.Integer(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("newest_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actors", JSONType, nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("dataset_id", "seq", name="pk_append_segments"),
        sa.ForeignKeyConstraint(
            ["dataset_id"],
            ["datasets.id"],
            name="fk_append_segments_dataset_id_datasets",
            ondelete="CASCADE",
        ),
    )
    op.create_index(
        "ix_append_segments_dataset_id_chunk", "append_segments", ["dataset_id", "chunk"]
    )


def downgrade() -> None:
    """Drop the append buffer (rows still in it are lost: fold before downgrading)."""
    op.drop_index("ix_append_segments_dataset_id_chunk", table_name="append_segments")
    op.drop_table("append_segments")
    op.drop_table("append_state")
