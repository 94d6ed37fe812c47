"""Request and response bodies of the HTTP API (separate from storage tables)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

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
]

Label = Annotated[str, StringConstraints(min_length=1, max_length=128)]
AttrValue = str | int | float | bool | None | list[str | int | float | bool]


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


class ItemIn(BaseModel):
    """A catalogue item (``PUT /v1/items/{item_id}``)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    title: Annotated[str, StringConstraints(max_length=1024)] | None = None
    category: Label | None = None
    """Primary category; defaults to the first of ``categories``."""
    categories: Annotated[list[Label], Field(max_length=64)] = []
    type: Label | None = None
    """Content type, e.g. ``article``, ``video``, ``tool``."""
    created_at: AwareDatetime | None = None
    """When the item was published (drives recency and 'new item' exploration)."""
    attributes: Annotated[dict[Label, AttrValue], Field(max_length=100)] = {}
    hidden: bool = False
    """Hidden items are never recommended."""


class ItemBatchEntry(ItemIn):
    """An item of ``POST /v1/items/batch``: an :class:`ItemIn` with its id."""

    item_id: Id


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


class UserIn(BaseModel):
    """User attributes (``PUT /v1/users/{user_id}`` replaces them all).

    Named fields are the ones Tastebud uses for segments and content adaptation; any other
    attribute may be added as an extra field (scalars or lists of scalars). Sensitive fields
    (e-mail, phone...) follow the same policy as in events.
    """

    model_config = ConfigDict(extra="allow", allow_inf_nan=False)

    segment: Label | None = None
    skill_level: Literal["beginner", "intermediate", "expert"] | None = None
    """Selects the text variant in content ranking."""
    interests: Annotated[list[Label], Field(max_length=100)] = []
    """Declared interests (categories)."""
    age_bucket: Label | None = None
    gender: Label | None = None
    occupation: Label | None = None
    region: Label | None = None
    locale: Annotated[str, StringConstraints(max_length=35)] | None = None
    country: Annotated[str, StringConstraints(pattern=r"^[A-Za-z]{2}$")] | None = None


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
