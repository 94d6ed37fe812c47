"""Privacy: erasure tombstones, the privacy log (transparency report), precomputed batch lists.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

Json = sa.JSON().with_variant(JSONB(), "postgresql")
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "tombstones",
        sa.Column(
            "tomb_key", sa.String(64), nullable=False, comment="HMAC of the pseudonym, own key"
        ),
        sa.Column("erased_ms", sa.BigInteger, nullable=False),
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("tomb_key", name="pk_tombstones"),
    )
    op.create_table(
        "privacy_log",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column(
            "kind", sa.String(32), nullable=False, comment="export, erasure, retention, rotation"
        ),
        sa.Column(
            "count", sa.BigInteger, nullable=False, comment="rows affected (no personal data)"
        ),
        sa.Column("details", Json, nullable=False),
        sa.Column("at_ms", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_privacy_log"),
    )
    op.create_index("ix_privacy_log_at_ms", "privacy_log", ["at_ms"])
    op.create_table(
        "batch_outputs",
        sa.Column(
            "path", sa.Text, nullable=False, comment="absolute path of a precomputed list file"
        ),
        sa.Column("format", sa.String(16), nullable=False),
        sa.Column("model", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("path", name="pk_batch_outputs"),
    )


def downgrade() -> None:
    for table in ("batch_outputs", "privacy_log", "tombstones"):
        op.drop_table(table)
