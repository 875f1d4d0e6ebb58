"""Alerts: rules, their live state, events, silences, sinks, routes, deliveries.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSONType = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
BigIntPK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["dataset_id"], ["datasets.id"], name=f"fk_{table}_dataset_id_datasets", ondelete="CASCADE"
    )


def upgrade() -> None:
    """Create the alert tables."""
    op.create_table(
        "alert_rules",
        sa.Column("id", BigIntPK, autoincrement=True, nullable=False),
        sa.Column("dataset_id", sa.String(63), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("spec", JSONType, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_alert_rules"),
        _fk("alert_rules"),
        sa.UniqueConstraint("dataset_id", "name", name="uq_alert_rules_dataset_id_name"),
    )
    op.create_table(
        "alert_states",
        sa.Column("id", BigIntPK, autoincrement=True, nullable=False),
        sa.Column("dataset_id", sa.String(63), nullable=False),
        sa.Column("rule", sa.String(128), nullable=False),
        sa.Column("series", sa.String(256), nullable=False),
        sa.Column("state", JSONType, nullable=False),
        sa.Column("evaluated_until", sa.BigInteger(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_alert_states"),
        _fk("alert_states"),
        sa.UniqueConstraint(
            "dataset_id", "rule", "series", name="uq_alert_states_dataset_id_rule_series"
        ),
    )
    op.create_table(
        "alert_events",
        sa.Column("id", BigIntPK, autoincrement=True, nullable=False),
        sa.Column("dataset_id", sa.String(63), nullable=False),
        sa.Column("rule", sa.String(128), nullable=False),
        sa.Column("series", sa.String(256), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("from_state", sa.String(16), nullable=False),
        sa.Column("to_state", sa.String(16), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("detail", JSONType, nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_alert_events"),
        _fk("alert_events"),
        sa.UniqueConstraint(
            "dataset_id",
            "rule",
            "series",
            "at",
            "to_state",
            name="uq_alert_events_dataset_id_rule_series_at_to_state",
        ),
    )
    op.create_index("ix_alert_events_dataset_id_at", "alert_events", ["dataset_id", "at"])
    op.create_table(
        "alert_silences",
        sa.Column("id", BigIntPK, autoincrement=True, nullable=False),
        sa.Column("dataset_id", sa.String(63), nullable=False),
        sa.Column("rule", sa.String(128), nullable=True),
        sa.Column("spec", JSONType, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_alert_silences"),
        _fk("alert_silences"),
    )
    op.create_table(
        "alert_sinks",
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("config", JSONType, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_alert_sinks"),
    )
    op.create_table(
        "alert_routes",
        sa.Column("dataset_id", sa.String(63), nullable=False),
        sa.Column("routes", JSONType, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("dataset_id", name="pk_alert_routes"),
        _fk("alert_routes"),
    )
    op.create_table(
        "alert_deliveries",
        sa.Column("id", BigIntPK, autoincrement=True, nullable=False),
        sa.Column("key", sa.String(512), nullable=False),
        sa.Column("sink", sa.String(128), nullable=False),
        sa.Column("dataset_id", sa.String(63), nullable=True),
        sa.Column("ok", sa.Boolean(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_alert_deliveries"),
    )
    op.create_index("ix_alert_deliveries_key_sink", "alert_deliveries", ["key", "sink"])


def downgrade() -> None:
    """Drop the alert tables."""
    for table in (
        "alert_deliveries",
        "alert_routes",
        "alert_sinks",
        "alert_silences",
        "alert_events",
        "alert_states",
        "alert_rules",
    ):
        op.drop_table(table)
