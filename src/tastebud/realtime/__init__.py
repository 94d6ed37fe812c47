"""Real-time per-user state, updated by ingest and read by serving: memory or Redis, called on
the request paths under a time budget (:class:`RealtimeGuard`)."""

from __future__ import annotations

from tastebud.realtime.base import (
    CONSUMING,
    Action,
    RealtimeConfig,
    RealtimeState,
    Update,
    UserState,
    updates_from,
)
from tastebud.realtime.guard import RealtimeGuard, StateRead
from tastebud.realtime.memory import MemoryState

__all__ = [
    "Action",
    "CONSUMING",
    "MemoryState",
    "RealtimeConfig",
    "RealtimeGuard",
    "RealtimeState",
    "StateRead",
    "Update",
    "UserState",
    "make_realtime",
    "updates_from",
]


def make_realtime(url: str, config: RealtimeConfig | None = None) -> RealtimeState:
    """A backend for ``memory://`` or ``redis://host:port/db``.

    Raises:
        ValueError: another scheme.
    """
    if url.startswith("memory://"):
        return MemoryState(config)
    if url.startswith(("redis://", "rediss://", "unix://")):
        from tastebud.realtime.redis import RedisState

        return RedisState(url, config)
    raise ValueError("TASTEBUD_REDIS_URL must start with memory:// or redis://")
