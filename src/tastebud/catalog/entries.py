"""What an item and a user's attributes may be: the validated entries of the catalogue, shared by
the API and the importers (so a CSV row and a ``PUT`` body obey the same rules), and the
``items`` row an item is stored as."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any, Literal, Self, TypedDict

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    StringConstraints,
    model_validator,
)

from tastebud.events.fields import Id

__all__ = [
    "BatchOutcome",
    "EntryResult",
    "ItemBatchEntry",
    "ItemIn",
    "ItemRow",
    "SkillLevel",
    "UserBatchEntry",
    "UserIn",
    "item_row",
]

_Label = Annotated[str, StringConstraints(min_length=1, max_length=128)]
SkillLevel = Literal["beginner", "intermediate", "expert"]
"""A user's skill level: selects the text variant in content ranking."""
_AttrValue = str | int | float | bool | None | list[str | int | float | bool]


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(_has_nul(v) for v in value)
    return False


class _NoNul(BaseModel):
    """Refuses U+0000 in any text (PostgreSQL can store it in neither text nor JSON)."""

    @model_validator(mode="after")
    def _no_nul(self) -> Self:
        if _has_nul(self.model_dump()):
            raise ValueError("text may not contain the NUL character (U+0000)")
        return self


class ItemIn(_NoNul):
    """A catalogue item (``PUT /v1/items/{item_id}``)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    title: Annotated[str, StringConstraints(max_length=1024)] | None = None
    category: _Label | None = None
    """Primary category; defaults to the first of ``categories``."""
    categories: Annotated[list[_Label], Field(max_length=64)] = []
    type: _Label | None = None
    """Content type, e.g. ``article``, ``video``, ``tool``."""
    created_at: AwareDatetime | None = None
    """When the item was published (drives recency and 'new item' exploration)."""
    attributes: Annotated[dict[_Label, _AttrValue], Field(max_length=100)] = {}
    hidden: bool = False
    """Hidden items are never recommended."""


class ItemBatchEntry(ItemIn):
    """An item of ``POST /v1/items/batch``: an :class:`ItemIn` with its id."""

    item_id: Id


class UserIn(_NoNul):
    """User attributes (``PUT /v1/users/{user_id}`` replaces them all).

    Named fields are the ones Tastebud uses for segments and content adaptation; any other
    attribute may be added as an extra field (scalars or lists of scalars). Sensitive fields
    (e-mail, phone...) follow the same policy as in events.
    """

    model_config = ConfigDict(extra="allow", allow_inf_nan=False)

    segment: _Label | None = None
    skill_level: SkillLevel | None = None
    """Selects the text variant in content ranking."""
    interests: Annotated[list[_Label], Field(max_length=100)] = []
    """Declared interests (categories)."""
    age_bucket: _Label | None = None
    gender: _Label | None = None
    occupation: _Label | None = None
    region: _Label | None = None
    locale: Annotated[str, StringConstraints(max_length=35)] | None = None
    country: Annotated[str, StringConstraints(pattern=r"^[A-Za-z]{2}$")] | None = None


class UserBatchEntry(UserIn):
    """A user of a bulk import: a :class:`UserIn` with its id."""

    user_id: Id


@dataclass(frozen=True, slots=True)
class EntryResult:
    """What happened to one item or user of a batch."""

    id: str | None
    status: Literal["created", "updated", "rejected"]
    reason: str | None = None


@dataclass
class BatchOutcome:
    """Results of a batch, in input order."""

    results: list[EntryResult] = field(default_factory=list)

    def count(self, status: str) -> int:
        """How many entries ended with ``status``."""
        return sum(r.status == status for r in self.results)


def _ms(dt: datetime | None) -> int | None:
    return None if dt is None else int(dt.timestamp() * 1000)


class ItemRow(TypedDict):
    """A row of the ``items`` table, its JSON columns decoded."""

    item_id: str
    title: str | None
    category: str | None
    """The primary category, always among ``categories``."""
    categories: list[str]
    item_type: str | None
    created_ms: int | None
    """When the item was published, ms since the epoch."""
    attributes: dict[str, JsonValue]
    hidden: bool
    updated_ms: int


def item_row(item_id: str, item: ItemIn, now_ms: int) -> ItemRow:
    """The ``items`` table row for an item; ``category`` defaults to the first category and is
    always among ``categories``."""
    categories = list(dict.fromkeys(item.categories))
    category = item.category or (categories[0] if categories else None)
    if category is not None and category not in categories:
        categories.insert(0, category)
    return {
        "item_id": item_id,
        "title": item.title,
        "category": category,
        "categories": categories,
        "item_type": item.type,
        "created_ms": _ms(item.created_at),
        # A copy, each list too (a list of scalars is a JSON list, which mypy's invariant list
        # would not take as one): the same JSON as before.
        "attributes": {k: [*v] if isinstance(v, list) else v for k, v in item.attributes.items()},
        "hidden": item.hidden,
        "updated_ms": now_ms,
    }
