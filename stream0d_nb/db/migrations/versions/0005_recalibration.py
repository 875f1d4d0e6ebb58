"""Recalibration: models, model versions, schedules and runs of notebooks.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSONType = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
BigIntPK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    """Create the recalibration tables."""
    op.create_table(
        "recal_models",
        sa.Column("id", BigIntPK, autoincrement=True, nullable=False),
        sa.Column("dataset_id", sa.String(63), nullable=False),
        sa.Column("name", sa.String(63), nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("spec", JSONType, nullable=False),
        sa.Column("activation", JSONType, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("created_by", sa.String(), nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("updated_by", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_recal_models"),
        sa.ForeignKeyConstraint(
            ["dataset_id"],
            ["datasets.id"],
            name="fk_recal_models_dataset_id_datasets",
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint("dataset_id", "name", name="uq_recal_models_dataset_id_name"),
    )
    op.create_table(
        "recal_versions",
        sa.Column("id", BigIntPK, autoincrement=True, nullable=False),
        sa.Column("model_id", sa.BigInteger(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("params", JSONType, nullable=False),
        sa.Column("metrics", JSONType, nullable=False),
        sa.Column("train_start", TS, nullable=False),
        sa.Column("train_end", TS, nullable=False),
        sa.Column("holdout_start", TS, nullable=False),
        sa.Column("holdout_end", TS, nullable=False),
        sa.Column("snapshot", sa.String(64), nullable=True),
        sa.Column("trigger", sa.String(255), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("run_id", sa.BigInteger(), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("created_by", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_recal_versions"),
        sa.ForeignKeyConstraint(
            ["model_id"],
            ["recal_models.id"],
            name="fk_recal_versions_model_id_recal_models",
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint("model_id", "version", name="uq_recal_versions_model_id_version"),
    )
    op.create_index("ix_recal_versions_model_id_status", "recal_versions", ["model_id", "status"])
    op.create_table(
        "recal_schedules",
        sa.Column("id", BigIntPK, autoincrement=True, nullable=False),
        sa.Column("name", sa.String(63), nullable=False),
        sa.Column("dataset_id", sa.String(63), nullable=True),
        sa.Column("cron", sa.String(128), nullable=False),
        sa.Column("notebook", sa.Text(), nullable=False),
        sa.Column("parameters", JSONType, nullable=False),
        sa.Column("catch_up", sa.String(8), nullable=False),
        sa.Column("max_catch_up", sa.Integer(), nullable=False),
        sa.Column("timeout_s", sa.Float(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("last_fired_for", TS, nullable=True),
        sa.Column("last_fired_at", TS, nullable=True),
        sa.Column("claimed_by", sa.String(255), nullable=True),
        sa.Column("claimed_at", TS, nullable=True),
        sa.Column("claim_run_id", sa.BigInteger(), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("created_by", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_recal_schedules"),
        sa.ForeignKeyConstraint(
            ["dataset_id"],
            ["datasets.id"],
            name="fk_recal_schedules_dataset_id_datasets",
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint("name", name="uq_recal_schedules_name"),
    )
    op.create_table(
        "recal_runs",
        sa.Column("id", BigIntPK, autoincrement=True, nullable=False),
        sa.Column("schedule_id", sa.BigInteger(), nullable=True),
        sa.Column("dataset_id", sa.String(63), nullable=True),
        sa.Column("notebook", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("trigger", sa.String(255), nullable=False),
        sa.Column("scheduled_for", TS, nullable=True),
        sa.Column("queued_at", TS, nullable=False),
        sa.Column("started_at", TS, nullable=True),
        sa.Column("ended_at", TS, nullable=True),
        sa.Column("duration_s", sa.Float(), nullable=True),
        sa.Column("parameters", JSONType, nullable=False),
        sa.Column("snapshot", sa.String(64), nullable=True),
        sa.Column("model_version_id", sa.BigInteger(), nullable=True),
        sa.Column("error_cell", sa.Integer(), nullable=True),
        sa.Column("error_name", sa.String(255), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("outputs", JSONType, nullable=False),
        sa.Column("metrics", JSONType, nullable=False),
        sa.Column("created_by", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_recal_runs"),
        sa.ForeignKeyConstraint(
            ["schedule_id"],
            ["recal_schedules.id"],
            name="fk_recal_runs_schedule_id_recal_schedules",
            ondelete="SET NULL",
        ),
    )
    op.create_index("ix_recal_runs_schedule_id", "recal_runs", ["schedule_id"])
    op.create_index("ix_recal_runs_queued_at", "recal_runs", ["queued_at"])


def downgrade() -> None:
    """Drop the recalibration tables."""
    op.drop_index("ix_recal_runs_queued_at", table_name="recal_runs")
    op.drop_index("ix_recal_runs_schedule_id", table_name="recal_runs")
    op.drop_table("recal_runs")
    op.drop_table("recal_schedules")
    op.drop_index("ix_recal_versions_model_id_status", table_name="recal_versions")
    op.drop_table("recal_versions")
    op.drop_table("recal_models")
