"""Model registry (versions, aliases, audit log) and scheduled-job locks and runs.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

Json = sa.JSON().with_variant(JSONB(), "postgresql")
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "model_versions",
        sa.Column("name", sa.String(64), nullable=False, comment="recommendations, churn, ..."),
        sa.Column("version", sa.Integer, nullable=False, comment="1, 2, ... per name"),
        sa.Column(
            "revision", sa.Integer, nullable=False, comment="rewrites of the artifact (erasure)"
        ),
        sa.Column("kind", sa.String(16), nullable=False, comment="recommender or predictor"),
        sa.Column("algorithm", sa.String(64), nullable=False),
        sa.Column("path", sa.Text, nullable=False, comment="artifact directory, relative"),
        sa.Column(
            "artifact_id", sa.String(16), nullable=False, comment="sha256 prefix of the manifest"
        ),
        sa.Column("status", sa.String(16), nullable=False, comment="active or archived"),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
        sa.Column("metrics", Json, nullable=False),
        sa.Column("lineage", Json, nullable=False),
        sa.Column("approval", Json, nullable=True, comment="who approved (admin key id), when"),
        sa.PrimaryKeyConstraint("name", "version", name="pk_model_versions"),
    )
    op.create_table(
        "model_aliases",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("alias", sa.String(32), nullable=False, comment="candidate, staging, production"),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("updated_ms", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("name", "alias", name="pk_model_aliases"),
    )
    op.create_table(
        "registry_log",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer, nullable=True),
        sa.Column(
            "action", sa.String(16), nullable=False, comment="register, promote, rollback, ..."
        ),
        sa.Column("alias", sa.String(32), nullable=True),
        sa.Column(
            "actor", sa.String(128), nullable=False, comment="admin key id, cli:<user>, worker"
        ),
        sa.Column("reason", sa.Text, nullable=True),
        sa.Column("details", Json, nullable=False),
        sa.Column("at_ms", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_registry_log"),
    )
    op.create_index("ix_registry_log_name", "registry_log", ["name"])
    op.create_table(
        "job_locks",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("owner", sa.String(128), nullable=False),
        sa.Column("acquired_ms", sa.BigInteger, nullable=False),
        sa.Column(
            "expires_ms", sa.BigInteger, nullable=False, comment="lease; renewed while running"
        ),
        sa.PrimaryKeyConstraint("name", name="pk_job_locks"),
    )
    op.create_table(
        "job_runs",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("job", sa.String(32), nullable=False),
        sa.Column("owner", sa.String(128), nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column(
            "status", sa.String(16), nullable=False, comment="running, succeeded, failed, crashed"
        ),
        sa.Column("started_ms", sa.BigInteger, nullable=False),
        sa.Column("finished_ms", sa.BigInteger, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("details", Json, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_job_runs"),
    )
    op.create_index("ix_job_runs_job_started_ms", "job_runs", ["job", "started_ms"])


def downgrade() -> None:
    for table in ("job_runs", "job_locks", "registry_log", "model_aliases", "model_versions"):
        op.drop_table(table)
