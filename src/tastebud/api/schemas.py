"""Request and response bodies of the HTTP API (separate from storage tables)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal, overload

from pydantic import BaseModel, ConfigDict, JsonValue

from tastebud.events.fields import Id
from tastebud.registry import Alias, Checklist, ModelVersion, VersionStatus

__all__ = [
    "AliasIn",
    "AliasOut",
    "BatchOut",
    "ConsentIn",
    "ConsentOut",
    "ConsentState",
    "ErrorBody",
    "ErrorOut",
    "EventOut",
    "EventPageOut",
    "EventResultOut",
    "HealthOut",
    "ItemBatchOut",
    "ItemOut",
    "ItemPageOut",
    "ItemPutOut",
    "ItemResultOut",
    "KnownFrom",
    "ModelSummaryOut",
    "ModelsOut",
    "StoredEventOut",
    "UserEntryOut",
    "UserOut",
    "UserPageOut",
    "VersionOut",
    "VersionSummaryOut",
    "from_ms",
]


@overload
def from_ms(ms: int) -> datetime: ...
@overload
def from_ms(ms: None) -> None: ...
@overload
def from_ms(ms: int | None) -> datetime | None: ...
def from_ms(ms: int | None) -> datetime | None:
    """A stored time (ms since the epoch) as an aware UTC datetime."""
    return None if ms is None else datetime.fromtimestamp(ms / 1000, tz=UTC)


class ErrorBody(BaseModel):
    """The body of every error response."""

    code: str
    """Stable machine-readable code, e.g. ``invalid_event``, ``unauthenticated``."""
    message: str
    details: list[dict[str, JsonValue]] = []
    """Structured details, e.g. one ``{"field", "message"}`` per invalid field."""


class ErrorOut(BaseModel):
    """``{"error": {...}}``."""

    error: ErrorBody


class EventOut(BaseModel):
    """Outcome of ``POST /v1/events``."""

    event_id: str
    status: Literal["accepted", "duplicate"]


class EventResultOut(BaseModel):
    """Outcome of one event of a batch."""

    event_id: str | None
    status: Literal["accepted", "duplicate", "rejected"]
    reason: str | None = None
    """Every problem of a rejected event, in one line."""
    code: str | None = None
    """Why a rejected event was refused: ``invalid_event``, ``consent_required`` or
    ``user_erased``."""
    details: list[dict[str, str]] | None = None
    """For a rejected event: one ``{"field", "message"}`` per problem (at most 50)."""


class BatchOut(BaseModel):
    """Outcome of ``POST /v1/events/batch``: counts and one result per event, in order."""

    accepted: int
    duplicates: int
    rejected: int
    results: list[EventResultOut]


class ItemOut(BaseModel):
    """A stored catalogue item."""

    item_id: str
    title: str | None
    category: str | None
    categories: list[str]
    type: str | None
    created_at: datetime | None
    attributes: dict[str, JsonValue]
    hidden: bool
    updated_at: datetime


class ItemPageOut(BaseModel):
    """A page of ``GET /v1/items``, in item-id order."""

    items: list[ItemOut]
    next_cursor: str | None
    """Pass as ``cursor`` for the next page; ``null`` on the last page."""


class ItemPutOut(BaseModel):
    """Outcome of ``PUT /v1/items/{item_id}``."""

    item_id: str
    created: bool


class ItemResultOut(BaseModel):
    """Outcome of one item of a batch."""

    item_id: str | None
    status: Literal["created", "updated", "rejected"]
    reason: str | None = None


class ItemBatchOut(BaseModel):
    """Outcome of ``POST /v1/items/batch``."""

    created: int
    updated: int
    rejected: int
    results: list[ItemResultOut]


KnownFrom = Literal["attributes", "events"]


class UserOut(BaseModel):
    """What is stored about a user: attributes (``PUT /v1/users/{user_id}``) and events."""

    user_id: str
    attributes: dict[str, JsonValue]
    """As stored (an encrypted field stays encrypted); ``{}`` when none were ever put."""
    created_at: datetime | None
    """When the attributes were first put; ``null`` when none were."""
    updated_at: datetime | None
    """When the attributes were last put; ``null`` when none were."""
    known_from: list[KnownFrom]
    """Where the user is known from: ``attributes``, ``events`` or both."""
    first_event_at: datetime | None
    """Event time of the user's oldest stored event (``null``: none)."""
    last_event_at: datetime | None
    """Event time of the user's newest stored event (``null``: none)."""
    event_count: int
    """Stored events of the user (with anonymous ids merged into it)."""


class UserEntryOut(BaseModel):
    """One user of ``GET /v1/users``: a pseudonym (raw ids are never stored) and what is
    stored under it."""

    pseudonym: str
    known_from: list[KnownFrom]
    attributes: dict[str, JsonValue] | None
    """Decrypted, as export shows them; ``null`` when none were ever put."""
    created_at: datetime | None
    updated_at: datetime | None
    first_event_at: datetime | None
    last_event_at: datetime | None
    event_count: int
    """Events stored under this pseudonym."""


class UserPageOut(BaseModel):
    """A page of ``GET /v1/users``."""

    users: list[UserEntryOut]
    next_cursor: str | None
    """Pass as ``cursor`` for the next page; ``null`` on the last page."""


class StoredEventOut(BaseModel):
    """One stored event of ``GET /v1/users/{user_id}/events`` (ids pseudonymized, sensitive
    fields redacted at ingest; encrypted fields decrypted, as export shows them)."""

    event_id: str
    event_type: str
    timestamp: datetime
    """Event time."""
    received_at: datetime
    """When Tastebud stored it."""
    session_id: str | None
    item_id: str | None
    data: dict[str, JsonValue] | None
    context: dict[str, JsonValue] | None
    source: str
    """How it arrived: ``api``, ``import``, ..."""


class EventPageOut(BaseModel):
    """A page of ``GET /v1/users/{user_id}/events``, newest first."""

    events: list[StoredEventOut]
    next_cursor: str | None
    """Pass as ``cursor`` for the next page; ``null`` on the last page."""


class ConsentIn(BaseModel):
    """Consent decisions to record; omitted purposes keep their state."""

    model_config = ConfigDict(extra="forbid")

    analytics: bool | None = None
    """Collecting and storing behaviour events."""
    personalization: bool | None = None
    """Using the user's data to personalize (and to train models)."""


class ConsentState(BaseModel):
    """Effective consent for one purpose."""

    granted: bool
    explicit: bool
    """Whether the user decided (otherwise the mode's default applies)."""
    updated_at: datetime | None


class ConsentOut(BaseModel):
    """A user's consent for every purpose."""

    mode: Literal["opt-out", "opt-in"]
    analytics: ConsentState
    personalization: ConsentState


class AliasIn(BaseModel):
    """Identify an anonymous visitor as this user."""

    model_config = ConfigDict(extra="forbid")

    anonymous_id: Id


class AliasOut(BaseModel):
    """Outcome of an alias merge."""

    merged_events: int
    """Anonymous events moved into the user's history by this call."""
    created: bool
    """Whether the alias is new (repeating the call is harmless)."""


class HealthOut(BaseModel):
    """Liveness / readiness."""

    status: Literal["ok", "unavailable"]
    checks: dict[str, str] = {}


class VersionSummaryOut(BaseModel):
    """One version in ``GET /v1/models``."""

    version: int
    algorithm: str
    status: VersionStatus
    created_ms: int
    aliases: list[Alias]


class ModelSummaryOut(BaseModel):
    """One registered model in ``GET /v1/models``."""

    name: str
    aliases: dict[Alias, int]
    """The version each alias points at."""
    versions: list[VersionSummaryOut]
    """Oldest first."""
    serving: int | None
    """The version this API process serves (``null``: none)."""


class ModelsOut(BaseModel):
    """``GET /v1/models``: every registered model."""

    models: list[ModelSummaryOut]


class VersionOut(ModelVersion):
    """One version as the model routes answer it: the registry's record (docs/registry.md),
    its governance checklist evaluated now, and whether this API process serves it."""

    checklist: Checklist
    serving: bool
    """Whether this process serves this very version."""
