"""The item catalogue and user attributes: validation and storage, shared by the API and the
importers (so a CSV row and a ``PUT`` body obey the same rules)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any, Literal, Self

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    model_validator,
)

from tastebud.events.ingest import describe_validation_error
from tastebud.events.schema import Id
from tastebud.privacy import PrivacyFilter, Pseudonymizer
from tastebud.store import Store

__all__ = [
    "Catalog",
    "EntryResult",
    "ItemBatchEntry",
    "ItemIn",
    "SkillLevel",
    "UserBatchEntry",
    "UserIn",
    "item_row",
]

Label = Annotated[str, StringConstraints(min_length=1, max_length=128)]
SkillLevel = Literal["beginner", "intermediate", "expert"]
"""A user's skill level: selects the text variant in content ranking."""
AttrValue = str | int | float | bool | None | list[str | int | float | bool]


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


class UserIn(_NoNul):
    """User attributes (``PUT /v1/users/{user_id}`` replaces them all).

    Named fields are the ones Tastebud uses for segments and content adaptation; any other
    attribute may be added as an extra field (scalars or lists of scalars). Sensitive fields
    (e-mail, phone...) follow the same policy as in events.
    """

    model_config = ConfigDict(extra="allow", allow_inf_nan=False)

    segment: Label | None = None
    skill_level: SkillLevel | None = None
    """Selects the text variant in content ranking."""
    interests: Annotated[list[Label], Field(max_length=100)] = []
    """Declared interests (categories)."""
    age_bucket: Label | None = None
    gender: Label | None = None
    occupation: Label | None = None
    region: Label | None = None
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


def item_row(item_id: str, item: ItemIn, now_ms: int) -> dict[str, Any]:
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
        "attributes": dict(item.attributes),
        "hidden": item.hidden,
        "updated_ms": now_ms,
    }


_ITEM_ENTRY = TypeAdapter(ItemBatchEntry)
_USER_ENTRY = TypeAdapter(UserBatchEntry)


def _reason(exc: ValidationError) -> str:
    return "; ".join(f"{d['field']}: {d['message']}" for d in describe_validation_error(exc))


class Catalog:
    """Writes items and user attributes (pseudonymized, PII policy applied)."""

    def __init__(self, store: Store, pseudonymizer: Pseudonymizer, privacy: PrivacyFilter) -> None:
        self.store = store
        self.pseudonymizer = pseudonymizer
        self.privacy = privacy

    def put_item(self, item_id: str, item: ItemIn, now_ms: int) -> bool:
        """Create or replace one item; returns whether it is new."""
        return bool(self.store.put_items([item_row(item_id, item, now_ms)]))

    def put_items(self, entries: Sequence[Any], now_ms: int) -> BatchOutcome:
        """Validate and upsert decoded JSON items; bad entries are rejected one by one."""
        out = BatchOutcome()
        rows: dict[str, dict[str, Any]] = {}
        for raw in entries:
            claimed = raw.get("item_id") if isinstance(raw, dict) else None
            try:
                entry = _ITEM_ENTRY.validate_python(raw)
            except ValidationError as exc:
                claimed_id = claimed if isinstance(claimed, str) else None
                out.results.append(EntryResult(claimed_id, "rejected", _reason(exc)))
                continue
            rows[entry.item_id] = item_row(entry.item_id, entry, now_ms)  # the last one wins
            out.results.append(EntryResult(entry.item_id, "updated"))
        created = self.store.put_items(list(rows.values()))
        out.results = _mark_created(out.results, created)
        return out

    def _user_attributes(self, user: UserIn) -> dict[str, Any]:
        return self.privacy.clean(user.model_dump(exclude_none=True), scan_text=False)

    def put_user(self, user_id: str, user: UserIn, now_ms: int) -> bool:
        """Create or replace a user's attributes; returns whether the user is new."""
        key = self.pseudonymizer.user(user_id)
        return self.store.put_user(key, self._user_attributes(user), now_ms)

    def put_users(self, entries: Sequence[Any], now_ms: int) -> BatchOutcome:
        """Validate and upsert decoded JSON users (with ``user_id``) in one transaction."""
        out = BatchOutcome()
        rows: dict[str, dict[str, Any]] = {}
        for raw in entries:
            try:
                entry = _USER_ENTRY.validate_python(raw)
            except ValidationError as exc:
                out.results.append(EntryResult(None, "rejected", _reason(exc)))
                continue
            key = self.pseudonymizer.user(entry.user_id)
            attributes = self._user_attributes(entry)
            attributes.pop("user_id", None)
            rows[key] = attributes
            # Results carry the pseudonym, never the raw id (they may be printed or logged).
            out.results.append(EntryResult(key, "updated"))
        created = self.store.put_users(rows, now_ms)
        out.results = _mark_created(out.results, created)
        return out


def _mark_created(results: list[EntryResult], created: set[str]) -> list[EntryResult]:
    seen: set[str] = set()
    marked = []
    for r in results:
        if r.status == "updated" and r.id in created and r.id not in seen:
            seen.add(r.id)
            r = EntryResult(r.id, "created")
        marked.append(r)
    return marked
