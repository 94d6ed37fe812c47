"""Relational storage on SQLite (embedded default) and PostgreSQL, through SQLAlchemy 2 Core."""

from __future__ import annotations

from tastebud.store._store import EVENT_COLUMNS, Store
from tastebud.store.engine import is_sqlite, make_engine, normalize_url
from tastebud.store.migrate import current_revision, head_revision, upgrade

__all__ = [
    "EVENT_COLUMNS",
    "Store",
    "current_revision",
    "head_revision",
    "is_sqlite",
    "make_engine",
    "normalize_url",
    "upgrade",
]
