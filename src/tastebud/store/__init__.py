"""Relational storage on SQLite (embedded default) and PostgreSQL, through SQLAlchemy 2 Core: the
tables and their migrations, the engine factory, and the event log (:class:`Store`)."""

from __future__ import annotations

from tastebud.store._browse import EventKey, EventSpan, Page, StoredEvent, page_of
from tastebud.store._store import EVENT_COLUMNS, EventRow, Store
from tastebud.store.engine import is_sqlite, make_engine, normalize_url
from tastebud.store.migrate import current_revision, head_revision, upgrade

__all__ = [
    "EVENT_COLUMNS",
    "EventKey",
    "EventRow",
    "EventSpan",
    "Page",
    "Store",
    "StoredEvent",
    "current_revision",
    "head_revision",
    "is_sqlite",
    "make_engine",
    "normalize_url",
    "page_of",
    "upgrade",
]
