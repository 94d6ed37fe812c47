"""Experiments: definitions, their audit log and the analyses the worker stores.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

Json = sa.JSON().with_variant(JSONB(), "postgresql")
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    # Serving processes read newly identified visitors incrementally while experiments run,
    # and only sign-ups keep their anonymous variant.
    op.create_index("ix_aliases_created_ms", "aliases", ["created_ms"])
    op.add_column(
        "aliases",
        sa.Column(
            "first_identity",
            sa.Boolean,
            nullable=True,
            comment="the user had no events before (a sign-up); NULL: merged before 0005",
        ),
    )
    op.create_table(
        "experiments",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("spec", Json, nullable=False, comment="the ExperimentSpec as JSON"),
        sa.Column(
            "status", sa.String(16), nullable=False, comment="draft, running, stopped, concluded"
        ),
        sa.Column("salt", sa.String(32), nullable=False, comment="the assignment hash's key"),
        sa.Column("layer", sa.String(64), nullable=False),
        sa.Column(
            "layer_lo", sa.Integer, nullable=True, comment="first bucket of the layer it owns"
        ),
        sa.Column("layer_hi", sa.Integer, nullable=True, comment="one past its last bucket"),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
        sa.Column("started_ms", sa.BigInteger, nullable=True),
        sa.Column("stopped_ms", sa.BigInteger, nullable=True),
        sa.Column("concluded_ms", sa.BigInteger, nullable=True),
        sa.Column("winner", sa.String(64), nullable=True),
        sa.Column("revision", sa.Integer, nullable=False, comment="bumped by every change"),
        sa.PrimaryKeyConstraint("name", name="pk_experiments"),
    )
    op.create_index("ix_experiments_status", "experiments", ["status"])
    op.create_table(
        "experiment_log",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column(
            "action",
            sa.String(16),
            nullable=False,
            comment="create, start, ramp, stop, conclude",
        ),
        sa.Column(
            "actor", sa.String(128), nullable=False, comment="admin key id, cli:<user>, worker"
        ),
        sa.Column("details", Json, nullable=False),
        sa.Column("at_ms", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_experiment_log"),
    )
    op.create_index("ix_experiment_log_name", "experiment_log", ["name"])
    op.create_table(
        "experiment_results",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("at_ms", sa.BigInteger, nullable=False),
        sa.Column(
            "results", Json, nullable=False, comment="the analysis as JSON (aggregates only)"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_experiment_results"),
    )
    op.create_index("ix_experiment_results_name_at_ms", "experiment_results", ["name", "at_ms"])


def downgrade() -> None:
    op.drop_table("experiment_results")
    op.drop_table("experiment_log")
    op.drop_table("experiments")
    with op.batch_alter_table("aliases") as batch:
        batch.drop_column("first_identity")
    op.drop_index("ix_aliases_created_ms", table_name="aliases")
