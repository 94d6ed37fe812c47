"""SQLAlchemy Core tables: the single definition of the schema, mirrored by Alembic migrations.

Times are stored as integer milliseconds since the Unix epoch (UTC): identical on SQLite and
PostgreSQL, cheap to index and to scan into columnar frames. Users are keyed by their pseudonym
(HMAC of the raw id, see ``privacy.pseudonym``); raw user ids are never stored.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

__all__ = [
    "aliases",
    "api_keys",
    "batch_outputs",
    "consent_log",
    "consents",
    "events",
    "experiment_log",
    "experiment_results",
    "experiments",
    "feature_snapshots",
    "feature_values",
    "items",
    "job_locks",
    "job_runs",
    "metadata",
    "model_aliases",
    "model_versions",
    "privacy_log",
    "registry_log",
    "tombstones",
    "users",
]

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# JSONB on PostgreSQL (indexable, compact), JSON text on SQLite.
Json = JSON().with_variant(JSONB(), "postgresql")
# SQLite only aliases the rowid for INTEGER PRIMARY KEY, so BIGINT becomes INTEGER there.
BigId = BigInteger().with_variant(Integer(), "sqlite")
PSEUDONYM_LEN = 32

events = Table(
    "events",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True, comment="arrival order"),
    Column("event_id", String(128), nullable=False, unique=True, comment="idempotency key"),
    Column("event_type", String(64), nullable=False),
    Column("user_key", String(PSEUDONYM_LEN), nullable=False, comment="pseudonym"),
    Column("anon_key", String(PSEUDONYM_LEN), nullable=True, comment="anonymous pseudonym"),
    Column("session_id", String(128), nullable=True),
    Column("item_id", String(128), nullable=True),
    Column("ts_ms", BigInteger, nullable=False, comment="event time, ms since epoch UTC"),
    Column("received_ms", BigInteger, nullable=False, comment="server receive time"),
    Column("source", String(16), nullable=False, server_default="api"),
    Column("schema_version", SmallInteger, nullable=False, server_default="1"),
    Column("data", Json, nullable=True),
    Column("context", Json, nullable=True),
    # Few indexes on purpose: every one costs ingest throughput. Analytics (per item, per
    # window) scan the table in bulk; serving reads per user; identify looks up anonymous keys.
    Index(None, "user_key", "ts_ms"),
    Index(None, "ts_ms"),
    Index(
        None,
        "anon_key",
        sqlite_where=text("anon_key IS NOT NULL"),
        postgresql_where=text("anon_key IS NOT NULL"),
    ),
)

users = Table(
    "users",
    metadata,
    Column("user_key", String(PSEUDONYM_LEN), primary_key=True),
    Column("attributes", Json, nullable=False),
    Column("created_ms", BigInteger, nullable=False),
    Column("updated_ms", BigInteger, nullable=False),
)

items = Table(
    "items",
    metadata,
    Column("item_id", String(128), primary_key=True),
    Column("title", Text, nullable=True),
    Column("category", String(128), nullable=True),
    Column("categories", Json, nullable=False),
    Column("item_type", String(64), nullable=True),
    Column("created_ms", BigInteger, nullable=True, comment="when the item was published"),
    Column("attributes", Json, nullable=False),
    Column("hidden", Boolean, nullable=False, server_default="0"),
    Column("updated_ms", BigInteger, nullable=False),
    Index(None, "category"),
)

consents = Table(
    "consents",
    metadata,
    Column("user_key", String(PSEUDONYM_LEN), primary_key=True),
    Column("purpose", String(32), primary_key=True),
    Column("granted", Boolean, nullable=False),
    Column("updated_ms", BigInteger, nullable=False),
)

consent_log = Table(
    "consent_log",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("user_key", String(PSEUDONYM_LEN), nullable=False),
    Column("purpose", String(32), nullable=False),
    Column("granted", Boolean, nullable=False),
    Column("at_ms", BigInteger, nullable=False),
    Index(None, "user_key"),
    Index(None, "at_ms"),
)

aliases = Table(
    "aliases",
    metadata,
    Column("anon_key", String(PSEUDONYM_LEN), primary_key=True),
    Column("user_key", String(PSEUDONYM_LEN), nullable=False),
    Column("created_ms", BigInteger, nullable=False),
    Column(
        "first_identity",
        Boolean,
        nullable=True,
        comment="the user had no events before (a sign-up); NULL: merged before 0005",
    ),
    Index(None, "user_key"),
    Index(None, "created_ms"),
)

feature_snapshots = Table(
    "feature_snapshots",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("as_of_ms", BigInteger, nullable=False, comment="only events before this are used"),
    Column("created_ms", BigInteger, nullable=False),
    Column("window_start_ms", BigInteger, nullable=True, comment="first event used"),
    Column("window_end_ms", BigInteger, nullable=True, comment="last event used"),
    Column("n_events", BigInteger, nullable=False),
    Column("n_users", Integer, nullable=False),
    Column("n_items", Integer, nullable=False),
    Column("feature_versions", Json, nullable=False),
    Column("stats", Json, nullable=False),
    Column("reports", Json, nullable=False),
    Index(None, "as_of_ms"),
)

feature_values = Table(
    "feature_values",
    metadata,
    Column("snapshot_id", BigInteger, primary_key=True),
    Column("entity", String(16), primary_key=True, comment="user, item or context"),
    Column("entity_key", String(128), primary_key=True),
    Column("vals", Json, nullable=False),
    Index(None, "entity", "entity_key"),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("key_id", String(32), primary_key=True),
    Column("name", String(128), nullable=False),
    Column("scope", String(16), nullable=False),
    Column("secret_hash", String(64), nullable=False, comment="sha256 of the secret part"),
    Column("created_ms", BigInteger, nullable=False),
    Column("revoked_ms", BigInteger, nullable=True),
)

# -- model registry (artifacts live in the artifact directory; this is their metadata) ---------
model_versions = Table(
    "model_versions",
    metadata,
    Column("name", String(64), primary_key=True, comment="recommendations, churn, ..."),
    Column("version", Integer, primary_key=True, comment="1, 2, ... per name"),
    Column("revision", Integer, nullable=False, comment="rewrites of the artifact (erasure)"),
    Column("kind", String(16), nullable=False, comment="recommender or predictor"),
    Column("algorithm", String(64), nullable=False),
    Column("path", Text, nullable=False, comment="artifact directory, relative"),
    Column("artifact_id", String(16), nullable=False, comment="sha256 prefix of the manifest"),
    Column("status", String(16), nullable=False, comment="active or archived"),
    Column("created_ms", BigInteger, nullable=False),
    Column("metrics", Json, nullable=False),
    Column("lineage", Json, nullable=False),
    Column("approval", Json, nullable=True, comment="who approved (admin key id), when"),
)

model_aliases = Table(
    "model_aliases",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("alias", String(32), primary_key=True, comment="candidate, staging, production"),
    Column("version", Integer, nullable=False),
    Column("updated_ms", BigInteger, nullable=False),
)

registry_log = Table(
    "registry_log",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("name", String(64), nullable=False),
    Column("version", Integer, nullable=True),
    Column("action", String(16), nullable=False, comment="register, promote, rollback, ..."),
    Column("alias", String(32), nullable=True),
    Column("actor", String(128), nullable=False, comment="admin key id, cli:<user>, worker"),
    Column("reason", Text, nullable=True),
    Column("details", Json, nullable=False),
    Column("at_ms", BigInteger, nullable=False),
    Index(None, "name"),
)

# -- scheduled jobs --------------------------------------------------------------------------
job_locks = Table(
    "job_locks",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("owner", String(128), nullable=False),
    Column("acquired_ms", BigInteger, nullable=False),
    Column("expires_ms", BigInteger, nullable=False, comment="lease; renewed while running"),
)

job_runs = Table(
    "job_runs",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("job", String(32), nullable=False),
    Column("owner", String(128), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("status", String(16), nullable=False, comment="running, succeeded, failed, crashed"),
    Column("started_ms", BigInteger, nullable=False),
    Column("finished_ms", BigInteger, nullable=True),
    Column("error", Text, nullable=True),
    Column("details", Json, nullable=False),
    Index(None, "job", "started_ms"),
)

# -- privacy -------------------------------------------------------------------------------------
tombstones = Table(
    "tombstones",
    metadata,
    Column("tomb_key", String(64), primary_key=True, comment="HMAC of the pseudonym, own key"),
    Column("erased_ms", BigInteger, nullable=False),
    Column("request_id", String(64), nullable=False),
)

privacy_log = Table(
    "privacy_log",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("kind", String(32), nullable=False, comment="export, erasure, retention, rotation"),
    Column("count", BigInteger, nullable=False, comment="rows affected (no personal data)"),
    Column("details", Json, nullable=False),
    Column("at_ms", BigInteger, nullable=False),
    Index(None, "at_ms"),
)

batch_outputs = Table(
    "batch_outputs",
    metadata,
    Column("path", Text, primary_key=True, comment="absolute path of a precomputed list file"),
    Column("format", String(16), nullable=False),
    Column("model", String(64), nullable=False),
    Column("version", Integer, nullable=False),
    Column("created_ms", BigInteger, nullable=False),
)

# -- experiments (docs/experiments.md) ----------------------------------------------------------
experiments = Table(
    "experiments",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("spec", Json, nullable=False, comment="the ExperimentSpec as JSON"),
    Column("status", String(16), nullable=False, comment="draft, running, stopped, concluded"),
    Column("salt", String(32), nullable=False, comment="the assignment hash's key"),
    Column("layer", String(64), nullable=False),
    Column("layer_lo", Integer, nullable=True, comment="first bucket of the layer it owns"),
    Column("layer_hi", Integer, nullable=True, comment="one past its last bucket"),
    Column("created_ms", BigInteger, nullable=False),
    Column("started_ms", BigInteger, nullable=True),
    Column("stopped_ms", BigInteger, nullable=True),
    Column("concluded_ms", BigInteger, nullable=True),
    Column("winner", String(64), nullable=True),
    Column("revision", Integer, nullable=False, comment="bumped by every change"),
    Index(None, "status"),
)

experiment_log = Table(
    "experiment_log",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("name", String(64), nullable=False),
    Column("action", String(16), nullable=False, comment="create, start, ramp, stop, conclude"),
    Column("actor", String(128), nullable=False, comment="admin key id, cli:<user>, worker"),
    Column("details", Json, nullable=False),
    Column("at_ms", BigInteger, nullable=False),
    Index(None, "name"),
)

experiment_results = Table(
    "experiment_results",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("name", String(64), nullable=False),
    Column("at_ms", BigInteger, nullable=False),
    Column("results", Json, nullable=False, comment="the analysis as JSON (aggregates only)"),
    Index(None, "name", "at_ms"),
)
