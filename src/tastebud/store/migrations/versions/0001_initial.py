"""Initial schema: events, users, items, consents, consent log, aliases, API keys.

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

Json = sa.JSON().with_variant(JSONB(), "postgresql")
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "events",
        sa.Column("id", BigId, primary_key=True, autoincrement=True, comment="arrival order"),
        sa.Column("event_id", sa.String(128), nullable=False, comment="idempotency key"),
        sa.Column("event_type", sa.String(64), nullable=False),
        sa.Column("user_key", sa.String(32), nullable=False, comment="pseudonym"),
        sa.Column("anon_key", sa.String(32), nullable=True, comment="anonymous pseudonym"),
        sa.Column("session_id", sa.String(128), nullable=True),
        sa.Column("item_id", sa.String(128), nullable=True),
        sa.Column("ts_ms", sa.BigInteger, nullable=False, comment="event time, ms since epoch UTC"),
        sa.Column("received_ms", sa.BigInteger, nullable=False, comment="server receive time"),
        sa.Column("source", sa.String(16), nullable=False, server_default="api"),
        sa.Column("schema_version", sa.SmallInteger, nullable=False, server_default="1"),
        sa.Column("data", Json, nullable=True),
        sa.Column("context", Json, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_events"),
        sa.UniqueConstraint("event_id", name="uq_events_event_id"),
    )
    op.create_index("ix_events_user_key_ts_ms", "events", ["user_key", "ts_ms"])
    op.create_index("ix_events_ts_ms", "events", ["ts_ms"])
    op.create_index(
        "ix_events_anon_key",
        "events",
        ["anon_key"],
        sqlite_where=sa.text("anon_key IS NOT NULL"),
        postgresql_where=sa.text("anon_key IS NOT NULL"),
    )

    op.create_table(
        "users",
        sa.Column("user_key", sa.String(32), nullable=False),
        sa.Column("attributes", Json, nullable=False),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
        sa.Column("updated_ms", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("user_key", name="pk_users"),
    )
    op.create_table(
        "items",
        sa.Column("item_id", sa.String(128), nullable=False),
        sa.Column("title", sa.Text, nullable=True),
        sa.Column("category", sa.String(128), nullable=True),
        sa.Column("categories", Json, nullable=False),
        sa.Column("item_type", sa.String(64), nullable=True),
        sa.Column(
            "created_ms", sa.BigInteger, nullable=True, comment="when the item was published"
        ),
        sa.Column("attributes", Json, nullable=False),
        sa.Column("hidden", sa.Boolean, nullable=False, server_default="0"),
        sa.Column("updated_ms", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("item_id", name="pk_items"),
    )
    op.create_index("ix_items_category", "items", ["category"])
    op.create_table(
        "consents",
        sa.Column("user_key", sa.String(32), nullable=False),
        sa.Column("purpose", sa.String(32), nullable=False),
        sa.Column("granted", sa.Boolean, nullable=False),
        sa.Column("updated_ms", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("user_key", "purpose", name="pk_consents"),
    )
    op.create_table(
        "consent_log",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("user_key", sa.String(32), nullable=False),
        sa.Column("purpose", sa.String(32), nullable=False),
        sa.Column("granted", sa.Boolean, nullable=False),
        sa.Column("at_ms", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_consent_log"),
    )
    op.create_index("ix_consent_log_user_key", "consent_log", ["user_key"])
    op.create_index("ix_consent_log_at_ms", "consent_log", ["at_ms"])
    op.create_table(
        "aliases",
        sa.Column("anon_key", sa.String(32), nullable=False),
        sa.Column("user_key", sa.String(32), nullable=False),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("anon_key", name="pk_aliases"),
    )
    op.create_index("ix_aliases_user_key", "aliases", ["user_key"])
    op.create_table(
        "api_keys",
        sa.Column("key_id", sa.String(32), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("scope", sa.String(16), nullable=False),
        sa.Column(
            "secret_hash", sa.String(64), nullable=False, comment="sha256 of the secret part"
        ),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
        sa.Column("revoked_ms", sa.BigInteger, nullable=True),
        sa.PrimaryKeyConstraint("key_id", name="pk_api_keys"),
    )


def downgrade() -> None:
    for table in ("api_keys", "aliases", "consent_log", "consents", "items", "users", "events"):
        op.drop_table(table)
