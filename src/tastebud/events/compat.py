"""Compatibility with the seed's ``trackEvent`` snippet (camelCase payloads on ``/api/events``)."""

from __future__ import annotations

import re
from typing import Any

__all__ = ["from_camel_payload", "snake"]

_CAMEL = re.compile(r"(?<=[a-z0-9])([A-Z])")


def snake(name: str) -> str:
    """``pageView`` -> ``page_view``; snake_case names are unchanged.

    >>> snake("eventType"), snake("page_view"), snake("userAgent")
    ('event_type', 'page_view', 'user_agent')
    """
    return _CAMEL.sub(r"_\1", name).lower()


def _snake_keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {snake(k) if isinstance(k, str) else k: v for k, v in value.items()}
    return value


def from_camel_payload(raw: Any) -> Any:
    """Rewrite a seed-style event (``userId``, ``eventType``, ``context.userAgent``...) into the
    canonical snake_case envelope. A ``null`` ``userId`` counts as absent."""
    if not isinstance(raw, dict):
        return raw
    out = _snake_keys(raw)
    for key in ("user_id", "anonymous_id", "session_id", "event_id", "item_id"):
        if key in out and out[key] is None:
            del out[key]
    if isinstance(out.get("event_type"), str) and not out["event_type"].startswith("custom."):
        out["event_type"] = snake(out["event_type"])
    for key in ("data", "context"):
        if key in out:
            out[key] = _snake_keys(out[key])
    return out
