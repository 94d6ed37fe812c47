"""The catalogue's writes: validated, pseudonymized items and user attributes, one at a time or
in batches (bad entries rejected one by one)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import JsonValue, TypeAdapter, ValidationError

from tastebud.catalog.entries import (
    BatchOutcome,
    EntryResult,
    ItemBatchEntry,
    ItemIn,
    ItemRow,
    UserBatchEntry,
    UserIn,
    item_row,
)
from tastebud.catalog.items import Items
from tastebud.catalog.users import Users
from tastebud.events.ingest import describe_validation_error
from tastebud.privacy import PrivacyFilter, Pseudonymizer
from tastebud.store import Store

__all__ = ["Catalog"]

_ITEM_ENTRY = TypeAdapter(ItemBatchEntry)
_USER_ENTRY = TypeAdapter(UserBatchEntry)


def _reason(exc: ValidationError) -> str:
    return "; ".join(f"{d['field']}: {d['message']}" for d in describe_validation_error(exc))


class Catalog:
    """Items and user attributes: validated writes (pseudonymized, PII policy applied) here,
    every read and raw write through :attr:`items` and :attr:`users`.

    Args:
        store: The database.
        pseudonymizer: Turns raw user ids into the stored pseudonyms.
        privacy: The sensitive-field policy applied to user attributes.
    """

    def __init__(self, store: Store, pseudonymizer: Pseudonymizer, privacy: PrivacyFilter) -> None:
        self.store = store
        self.pseudonymizer = pseudonymizer
        self.privacy = privacy
        self.items = Items(store)
        """The ``items`` table."""
        self.users = Users(store)
        """The ``users`` table."""

    def put_item(self, item_id: str, item: ItemIn, now_ms: int) -> bool:
        """Create or replace one item; returns whether it is new."""
        return bool(self.items.put([item_row(item_id, item, now_ms)]))

    def put_items(self, entries: Sequence[Any], now_ms: int) -> BatchOutcome:
        """Validate and upsert decoded JSON items; bad entries are rejected one by one."""
        out = BatchOutcome()
        rows: dict[str, ItemRow] = {}
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
        created = self.items.put(list(rows.values()))
        out.results = _mark_created(out.results, created)
        return out

    def _user_attributes(self, user: UserIn) -> dict[str, JsonValue]:
        return self.privacy.clean(user.model_dump(exclude_none=True), scan_text=False)

    def put_user(self, user_id: str, user: UserIn, now_ms: int) -> bool:
        """Create or replace a user's attributes; returns whether the user is new."""
        key = self.pseudonymizer.user(user_id)
        return self.users.put(key, self._user_attributes(user), now_ms)

    def put_users(self, entries: Sequence[Any], now_ms: int) -> BatchOutcome:
        """Validate and upsert decoded JSON users (with ``user_id``) in one transaction."""
        out = BatchOutcome()
        rows: dict[str, dict[str, JsonValue]] = {}
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
        created = self.users.put_many(rows, now_ms)
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
