"""Events: the schema of every event type and the ingest path (validate, consent, privacy)."""

from __future__ import annotations

from tastebud.events.data import DATA_MODELS, EVENT_CATEGORIES
from tastebud.events.schema import SCHEMA_VERSION, validate_event

__all__ = ["DATA_MODELS", "EVENT_CATEGORIES", "SCHEMA_VERSION", "validate_event"]
