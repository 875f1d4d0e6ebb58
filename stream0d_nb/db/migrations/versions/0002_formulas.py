"""Derived channels: formulas saved per dataset.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigIntPK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    """Create the formulas table."""
    op.create_table(
        "formulas",
        sa.Column("id", BigIntPK, autoincrement=True, nullable=False),
        sa.Column("dataset_id", sa.String(63), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("formula", sa.Text(), nullable=False),
        sa.Column("units", sa.String(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("materialize", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_formulas"),
        sa.ForeignKeyConstraint(
            ["dataset_id"],
            ["datasets.id"],
            name="fk_formulas_dataset_id_datasets",
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint("dataset_id", "name", name="uq_formulas_dataset_id_name"),
    )


def downgrade() -> None:
    """Drop the formulas table."""
    op.drop_table("formulas")
