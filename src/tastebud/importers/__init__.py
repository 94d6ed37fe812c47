"""Importers: datasets into events, items and users through the same validation as the API."""

from __future__ import annotations

from tastebud.importers._common import EventSink, ImportSummary
from tastebud.importers.catalog import import_items, import_users, read_table
from tastebud.importers.interactions import InteractionSpec, import_interactions
from tastebud.importers.movielens import import_movielens

__all__ = [
    "EventSink",
    "ImportSummary",
    "InteractionSpec",
    "import_interactions",
    "import_items",
    "import_movielens",
    "import_users",
    "read_table",
]
