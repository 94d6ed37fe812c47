"""Settings, read from ``TASTEBUD_*`` environment variables and an optional TOML file.

Settings are passed in explicitly (``create_app(settings)``, ``Store(engine)``): nothing in Tastebud
reads a module-level global. Precedence, highest first: keyword arguments, environment variables,
the TOML file named by ``TASTEBUD_CONFIG``, the defaults below.

Example::

    >>> s = Settings(data_dir="/tmp/tb-doc")
    >>> s.resolved_database_url()
    'sqlite:////tmp/tb-doc/tastebud.db'
    >>> s.consent_mode
    'opt-out'
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, SecretStr, field_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

__all__ = [
    "GovernancePolicy",
    "RateLimits",
    "Schedule",
    "SensitiveAction",
    "ServingConfig",
    "Settings",
    "normalise_origin",
]

SensitiveAction = Literal["drop", "redact", "encrypt", "truncate"]
"""What ingest does with a sensitive field: remove it, replace it by ``"[redacted]"``, encrypt it
with the Fernet keys, or (IP addresses only) truncate it to its /24 or /48 network."""

_DEFAULT_SENSITIVE: dict[str, SensitiveAction] = {
    "email": "encrypt",
    "phone": "encrypt",
    "ssn": "drop",
    "credit_card": "drop",
    "password": "drop",
    "ip": "drop",
}


def normalise_origin(value: str) -> str:
    """``scheme://host[:port]`` in lower case, as browsers send it in ``Origin``.

    >>> normalise_origin("HTTPS://Shop.Example:8443/")
    'https://shop.example:8443'

    Raises:
        ValueError: not an http(s) origin (a path, a query, ``*`` or no host).
    """
    parts = urlsplit(value.strip())
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{value!r} is not an origin like https://shop.example")
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        raise ValueError(f"{value!r} is not an origin: give scheme://host[:port] only")
    port = f":{parts.port}" if parts.port is not None else ""
    return f"{parts.scheme.lower()}://{parts.hostname.lower()}{port}"


class GovernancePolicy(BaseModel):
    """The configurable floors of the governance checklist (``docs/registry.md``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    min_window_days: float = Field(default=1.0, ge=0)
    """Representative data: the training events must span at least this many days."""
    min_users: int = Field(default=20, ge=1)
    """Representative data: at least this many users in the training data."""
    min_items: int = Field(default=5, ge=1)
    """Representative data (recommenders): at least this many items."""
    min_item_coverage: float = Field(default=0.5, ge=0, le=1)
    """Representative data (recommenders): share of the catalogue's visible items that appear
    in the training data."""
    min_ndcg10: float = Field(default=0.01, ge=0, le=1)
    """Validated (recommenders): held-out NDCG@10 floor."""
    min_ndcg10_over_popularity: float = Field(default=1.0, ge=0)
    """Validated (recommenders): held-out NDCG@10 at least this multiple of popularity's on the
    same split."""
    min_roc_auc: float = Field(default=0.6, ge=0, le=1)
    """Validated (predictors): held-out ROC-AUC floor."""
    max_ece: float = Field(default=0.1, ge=0, le=1)
    """Validated (predictors): held-out expected calibration error ceiling."""
    max_disparity: float = Field(default=2.0, ge=1)
    """Bias analysis: the largest ratio between the best and worst user group's NDCG@10
    (recommenders) or ROC-AUC (predictors), over the user-attribute slices."""
    auto_promote: bool = True
    """Whether the worker promotes a candidate whose checklist passes (recorded as approved by
    the policy) when it is not worse than production by more than ``tolerance``."""
    tolerance: float = Field(default=0.01, ge=0, le=1)
    """Auto-promotion: a candidate's NDCG@10 (ROC-AUC for predictors) may be at most this much
    below production's."""


class Schedule(BaseModel):
    """``tastebud worker``'s schedule (the seed's training schedule, configurable)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    incremental_hours: float = Field(default=24.0, gt=0)
    """Incremental training (changed users and items, features): daily."""
    full_days: float = Field(default=7.0, gt=0)
    """Full retraining (features, recommenders, predictors, evaluation): weekly."""
    feature_review_days: float = Field(default=30.0, gt=0)
    """Feature review report (statistics, unused and deprecated features): monthly."""
    bakeoff_days: float = Field(default=91.0, gt=0)
    """Model bake-off report (every model family on the latest data): quarterly."""
    tick_seconds: float = Field(default=60.0, gt=0)
    """How often the worker looks for due jobs."""
    max_attempts: int = Field(default=3, ge=1)
    """A failed or crashed job is retried until it has run this many times."""
    retry_seconds: float = Field(default=300.0, ge=0)
    """Wait before retrying a failed job."""
    retention_hours: float = Field(default=24.0, gt=0)
    """Retention (deleting events older than their type's retention period): daily."""
    experiments_hours: float = Field(default=1.0, gt=0)
    """Analysis of every running experiment, kept for its history of results: hourly."""
    lease_seconds: float = Field(default=120.0, gt=0)
    """A job's database lock expires this long after its last renewal (a crashed worker's job
    becomes runnable again)."""


class ServingConfig(BaseModel):
    """How the personalization engine blends, explores, caches and logs (``docs/serving.md``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    session_item_weight: float = Field(default=1.0, ge=0)
    """Weight of what the model relates to the items of the live session (items consumed since
    training count as if in the user's history)."""
    session_category_weight: float = Field(default=1.0, ge=0)
    """Boost, in standard deviations of the model's scores, for items of the session's
    categories, times each category's share of the session (a session all in one category
    adds this much to that category's items)."""
    session_decay: float = Field(default=0.8, gt=0, le=1)
    """Each older session action counts this much less than the next (newest: 1)."""
    exploration_share: float = Field(default=0.1, ge=0, le=0.5)
    """Share of the slots of a list given to new items in categories the user likes."""
    new_item_days: float = Field(default=14.0, gt=0)
    """An item published this recently is new (an exploration candidate)."""
    cold_start_policy: Literal["segment", "popular"] = "segment"
    """A user the model does not know, without a session: ``segment`` serves their segment's
    list (else their device's, locale's or part of the day's), ``popular`` the overall one."""
    cache_ttl_s: float = Field(default=30.0, ge=0)
    """Per-user result cache lifetime (0: off). An entry is also invalid as soon as the user's
    real-time state, the model or the catalogue changes."""
    cache_size: int = Field(default=100_000, ge=0)
    """Most cached lists per API process."""
    log_impressions: bool = True
    """Store every served list as an ``impression`` event (model version, list id)."""
    realtime_retry_s: float = Field(default=5.0, ge=0)
    """After the real-time store fails, serve from the model alone for this long before trying
    it again (a down Redis costs one timeout, not one per request)."""
    realtime_budget_ms: float = Field(default=50.0, gt=0)
    """Longest a request waits for Redis: reading the user's real-time state (then the answer
    is served ``degraded``), applying ingested events to it (then the events are acknowledged
    and the update finishes late or is dropped, counted in
    ``tastebud_realtime_updates_total``) and the shared rate limiter's round trip (then the
    key is limited per process)."""
    catalog_refresh_s: float = Field(default=30.0, gt=0)
    """How often each API process re-reads the catalogue (categories, hidden, new items)."""


class RateLimits(BaseModel):
    """Requests per second allowed per API key, by scope (a token bucket per key, shared by
    every API process through Redis when it is configured). Defaults sit well above the
    benchmark rates (ingest about 100 batches/s, serving about 1,500 requests/s)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: bool = True
    ingest_per_s: float = Field(default=5000.0, gt=0)
    serve_per_s: float = Field(default=5000.0, gt=0)
    admin_per_s: float = Field(default=5000.0, gt=0)
    burst_s: float = Field(default=2.0, gt=0)
    """Bucket size in seconds of the rate (short bursts above the rate are allowed)."""


_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
"""Level names both the standard library and uvicorn (``tastebud serve``) know."""


def _default_retention() -> dict[str, int]:
    return {"*": 395, "page_load": 30, "error": 30, "resource_usage": 30, "network_quality": 30}


class Settings(BaseSettings):
    """Every knob of a Tastebud deployment. Field names map to ``TASTEBUD_<NAME>`` variables."""

    model_config = SettingsConfigDict(
        env_prefix="TASTEBUD_",
        extra="ignore",
        frozen=True,
        validate_default=True,
    )

    env: Literal["development", "production"] = "development"
    """``development`` generates missing secrets into the data dir and migrates the database on
    start; ``production`` refuses to start without explicit secrets and never migrates by itself."""

    data_dir: Path = Path("tastebud-data")
    """Where the embedded deployment keeps its SQLite file, secrets and artifacts."""

    database_url: str | None = None
    """SQLAlchemy URL. Default: ``sqlite:///<data_dir>/tastebud.db``. ``postgresql://`` URLs use
    psycopg 3."""

    redis_url: str = "memory://"
    """Real-time state backend: ``memory://`` (one process) or ``redis://host:port/db``."""

    artifact_dir: Path | None = None
    """Model artifacts. Default: ``<data_dir>/artifacts``."""

    pseudonym_key: SecretStr | None = None
    """HMAC-SHA256 key for user pseudonyms (hex or any string of at least 32 characters). Never
    rotate it: every stored history is keyed by it. Generated into the data dir in development."""

    fernet_keys: SecretStr | None = None
    """Comma-separated Fernet keys for encrypted fields, newest first (MultiFernet). Generated into
    the data dir in development."""

    consent_mode: Literal["opt-out", "opt-in"] = "opt-out"
    """``opt-out``: events are accepted unless the user withdrew analytics consent. ``opt-in``:
    events are accepted only after the user granted analytics consent."""

    sensitive_fields: dict[str, SensitiveAction] = Field(
        default_factory=lambda: dict(_DEFAULT_SENSITIVE)
    )
    """Field names (matched case- and punctuation-insensitively, at any depth of ``data``,
    ``context`` and user attributes) and what ingest does with them."""

    max_batch_events: int = Field(default=1000, ge=1, le=100_000)
    """Most events (or items) one batch request may carry."""

    max_batch_bytes: int = Field(default=1 << 20, ge=1024)
    """Largest body a batch request may have (1 MiB)."""

    max_body_bytes: int = Field(default=64 << 10, ge=1024)
    """Largest body any other request may have (64 KiB)."""

    max_future_skew_s: float = Field(default=300.0, ge=0)
    """Events stamped further than this in the future are rejected (clock skew allowance)."""

    sqlite_synchronous: Literal["FULL", "NORMAL"] = "FULL"
    """SQLite ``PRAGMA synchronous`` in WAL mode. ``FULL`` makes an acknowledged batch survive a
    power loss; ``NORMAL`` survives a process crash only."""

    auto_migrate: bool | None = None
    """Run database migrations when the API starts. Default: on in development, off in
    production (run ``tastebud db upgrade`` there)."""

    key_cache_seconds: float = Field(default=2.0, ge=0)
    """How long an API process trusts a looked-up API key before reading it again; a revoked key
    stops working in other processes within this time (at once in the revoking process)."""

    host: str = "127.0.0.1"
    """Address ``tastebud serve`` binds."""

    port: int = Field(default=8000, ge=0, le=65535)
    """Port ``tastebud serve`` binds."""

    log_level: str = "INFO"
    """Python log level name (``DEBUG``, ``INFO``, ``WARNING``, ``ERROR``, ``CRITICAL``; any
    case)."""

    log_json: bool = False
    """Render logs as JSON lines instead of key=value text."""

    governance: GovernancePolicy = Field(default_factory=GovernancePolicy)
    """Governance checklist floors and the auto-promotion policy (JSON in
    ``TASTEBUD_GOVERNANCE``, a table in the TOML file)."""

    schedule: Schedule = Field(default_factory=Schedule)
    """The worker's schedule (JSON in ``TASTEBUD_SCHEDULE``)."""

    rate_limits: RateLimits = Field(default_factory=RateLimits)
    """Per-key request rate limits (``TASTEBUD_RATE_LIMITS``, JSON); over the limit: ``429``
    with ``Retry-After``."""

    retention_days: dict[str, Annotated[int, Field(ge=1)]] = Field(
        default_factory=_default_retention
    )
    """Days an event is kept, counted from its ``received_at``, per event type (``*``: every
    other type; at least 1 day each). Defaults: 395 days; performance events (``page_load``,
    ``error``, ``resource_usage``, ``network_quality``) 30 days."""

    serving: ServingConfig = Field(default_factory=ServingConfig)
    """The personalization engine's blending, exploration, cache and logging
    (``TASTEBUD_SERVING``, JSON)."""

    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    """Origins (``scheme://host[:port]``) whose web pages may call the ingest routes from a
    browser (``POST /v1/events``, ``/v1/events/batch``, ``/api/events``, ``PUT
    /v1/users/{id}/consent``): comma-separated or a JSON list in ``TASTEBUD_CORS_ORIGINS``.
    Default: none. Credentials (cookies) are never allowed; every other route answers no CORS."""

    cors_keyless: bool = False
    """Let pages from ``cors_origins`` send events without an API key, as the seed document's
    ``trackEvent`` does: the browser's ``Origin`` header stands in for an ingest key (rate-limited
    per origin). As safe as an ingest key embedded in those pages, which anyone can read."""

    cors_max_age_s: int = Field(default=600, ge=0, le=86_400)
    """How long a browser may cache a CORS preflight answer."""

    earliest_event_time: AwareDatetime = datetime(2000, 1, 1, tzinfo=UTC)
    """Events stamped before this are rejected (``0`` or ``0001-01-01`` are client bugs, not
    history), on the API and ``tastebud ingest``. The importers (``tastebud import``) load
    historical datasets and accept any time after 1970-01-01T00:00:00Z."""

    model_poll_seconds: float = Field(default=2.0, gt=0, le=60)
    """How often an API process checks the registry for a new production version (a promotion
    is live in every process within this time plus the model's load time)."""
    experiment_poll_seconds: float = Field(default=2.0, gt=0, le=60)
    """How often an API process checks for started, ramped or stopped experiments (and, while
    some run, for newly identified visitors)."""

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [part for part in (p.strip() for p in text.split(",")) if part]
        return value

    @field_validator("cors_origins")
    @classmethod
    def _check_origins(cls, value: list[str]) -> list[str]:
        return [normalise_origin(v) for v in value]

    @field_validator("log_level")
    @classmethod
    def _upper_level(cls, value: str) -> str:
        level = value.upper()
        if level not in _LOG_LEVELS:
            raise ValueError(f"not a log level; use one of {', '.join(_LOG_LEVELS)}")
        return level

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Keyword arguments, then the environment, then the TOML file named by
        ``TASTEBUD_CONFIG``."""
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        toml_path = os.environ.get("TASTEBUD_CONFIG")
        if toml_path:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=Path(toml_path)))
        return tuple(sources)

    def resolved_database_url(self) -> str:
        """The database URL, defaulting to a SQLite file in the data dir."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.data_dir.absolute() / 'tastebud.db'}"

    def resolved_artifact_dir(self) -> Path:
        """The artifact directory, defaulting to ``<data_dir>/artifacts``."""
        return self.artifact_dir if self.artifact_dir is not None else self.data_dir / "artifacts"

    def should_auto_migrate(self) -> bool:
        """Whether the API migrates the database on start."""
        if self.auto_migrate is not None:
            return self.auto_migrate
        return self.env == "development"
