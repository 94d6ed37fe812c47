"""The item catalogue and user attributes: what an entry may be (:mod:`.entries`), the
``items`` and ``users`` tables (:mod:`.items`, :mod:`.users`: this package owns their queries),
and the validated, pseudonymized writes of the API and the importers (:class:`Catalog`)."""

from __future__ import annotations

from tastebud.catalog._catalog import Catalog
from tastebud.catalog.entries import (
    BatchOutcome,
    EntryResult,
    ItemBatchEntry,
    ItemIn,
    ItemRow,
    SkillLevel,
    UserBatchEntry,
    UserIn,
    item_row,
)
from tastebud.catalog.items import Items, ItemSummary
from tastebud.catalog.users import UserRow, Users, UserSummary

__all__ = [
    "BatchOutcome",
    "Catalog",
    "EntryResult",
    "ItemBatchEntry",
    "ItemIn",
    "ItemRow",
    "ItemSummary",
    "Items",
    "SkillLevel",
    "UserBatchEntry",
    "UserIn",
    "UserRow",
    "UserSummary",
    "Users",
    "item_row",
]
