"""Offline feature store: snapshots and their values.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

Json = sa.JSON().with_variant(JSONB(), "postgresql")
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "feature_snapshots",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column(
            "as_of_ms", sa.BigInteger, nullable=False, comment="only events before this are used"
        ),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
        sa.Column("window_start_ms", sa.BigInteger, nullable=True, comment="first event used"),
        sa.Column("window_end_ms", sa.BigInteger, nullable=True, comment="last event used"),
        sa.Column("n_events", sa.BigInteger, nullable=False),
        sa.Column("n_users", sa.Integer, nullable=False),
        sa.Column("n_items", sa.Integer, nullable=False),
        sa.Column("feature_versions", Json, nullable=False),
        sa.Column("stats", Json, nullable=False),
        sa.Column("reports", Json, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_feature_snapshots"),
    )
    op.create_index("ix_feature_snapshots_as_of_ms", "feature_snapshots", ["as_of_ms"])
    op.create_table(
        "feature_values",
        sa.Column("snapshot_id", sa.BigInteger, nullable=False),
        sa.Column("entity", sa.String(16), nullable=False, comment="user, item or context"),
        sa.Column("entity_key", sa.String(128), nullable=False),
        sa.Column("vals", Json, nullable=False),
        sa.PrimaryKeyConstraint("snapshot_id", "entity", "entity_key", name="pk_feature_values"),
    )
    op.create_index(
        "ix_feature_values_entity_entity_key", "feature_values", ["entity", "entity_key"]
    )


def downgrade() -> None:
    op.drop_table("feature_values")
    op.drop_table("feature_snapshots")
