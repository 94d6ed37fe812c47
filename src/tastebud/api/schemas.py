"""Request and response bodies of the HTTP API (separate from storage tables)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from tastebud.catalog import ItemIn, UserIn  # noqa: F401 - part of the API's schemas
from tastebud.events.schema import Id

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
    "EventResultOut",
    "HealthOut",
    "ItemBatchOut",
    "ItemIn",
    "ItemOut",
    "ItemPutOut",
    "ItemResultOut",
    "UserIn",
    "UserOut",
    "from_ms",
]


def from_ms(ms: int | None) -> datetime | None:
    """A stored time (ms since the epoch) as an aware UTC datetime."""
    return None if ms is None else datetime.fromtimestamp(ms / 1000, tz=UTC)


class ErrorBody(BaseModel):
    """The body of every error response."""

    code: str
    """Stable machine-readable code, e.g. ``invalid_event``, ``unauthenticated``."""
    message: str
    details: list[dict[str, Any]] = []


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
    attributes: dict[str, Any]
    hidden: bool
    updated_at: datetime


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


class UserOut(BaseModel):
    """A user's stored attributes."""

    user_id: str
    attributes: dict[str, Any]
    created_at: datetime
    updated_at: datetime


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
