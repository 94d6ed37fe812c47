"""The real-time state protocol, shared by the in-process and the Redis backends.

What ingest records and serving reads, per user (the seed's RealtimePersonalizer, made
bounded): recent session actions (a list with a TTL, default 1 hour), counters by item and by
category, recently consumed items, and the latest online feature values. A batch of events
becomes one :class:`Update` per user; a backend applies a whole batch at once and reads one
user's state in one round trip.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypedDict

import orjson
from pydantic import BaseModel, ConfigDict, Field, JsonValue

__all__ = [
    "Action",
    "CONSUMING",
    "PASSIVE",
    "RealtimeConfig",
    "RealtimeState",
    "Update",
    "UserState",
    "updates_from",
]

CONSUMING = frozenset({"page_view", "content_engagement", "rating", "interaction", "conversion"})
"""Event types after which an item counts as consumed (serving excludes it next time)."""


PASSIVE = frozenset({"page_load", "error", "resource_usage", "network_quality", "impression"})
"""Event types that are not user actions (performance reports, served lists): not tracked."""


class RealtimeConfig(BaseModel):
    """Sizes and lifetimes of the real-time state."""

    model_config = ConfigDict(frozen=True)

    actions_ttl_s: int = Field(default=3600, ge=1)
    """Recent session actions expire this long after the user's last event."""
    max_actions: int = Field(default=50, ge=1)
    """Most recent actions kept per user."""
    counters_ttl_s: int = Field(default=30 * 86400, ge=1)
    """Item and category counters, consumed items and online features expire after this much
    inactivity."""
    max_consumed: int = Field(default=200, ge=1)
    """Most recently consumed items kept per user."""


class Action(TypedDict):
    """One session action as it is stored (JSON in Redis, hence the short keys)."""

    t: str
    """The event type."""
    i: str | None
    """The item, if the event has one."""
    c: str | None
    """The item's category, if it has one."""
    ts: int
    """Event time, ms since the epoch."""
    s: str | None
    """The session id."""


@dataclass
class Update:
    """What one batch changes for one user."""

    actions: list[Action] = field(default_factory=list)
    """New actions in event time order, oldest first. Backends merge them into the stored
    actions by event time, so a late event never becomes the "current" one."""
    items: dict[str, int] = field(default_factory=dict)
    categories: dict[str, int] = field(default_factory=dict)
    consumed: dict[str, int] = field(default_factory=dict)
    """Item -> time consumed (ms)."""
    feedback: dict[str, str] = field(default_factory=dict)
    """Item -> the latest explicit feedback (``like``, ``dislike``, ``not_interested``)."""


@dataclass
class UserState:
    """One user's real-time state."""

    actions: list[Action]
    """Recent actions, newest event time first."""
    items: dict[str, int]
    categories: dict[str, int]
    consumed: list[str]
    """Recently consumed items, newest first."""
    features: dict[str, JsonValue] | None
    """The latest online feature values by name (a JSON document published by every
    snapshot build), or ``None``."""
    feedback: dict[str, str] = field(default_factory=dict)
    """Item -> the latest explicit feedback; kept without expiry (a ``not_interested`` item
    never comes back)."""

    @property
    def empty(self) -> bool:
        """No state at all (an unknown or long-inactive user)."""
        return not (
            self.actions
            or self.items
            or self.categories
            or self.consumed
            or self.features
            or self.feedback
        )


def updates_from(
    events: Iterable[Sequence[Any]],
    categories: Mapping[str, str | None],
    *,
    session_since_ms: int | None = None,
) -> dict[str, Update]:
    """Group stored event rows (``store.EVENT_COLUMNS`` order) into per-user updates.

    The session is driven by event time, not arrival: each user's actions come out in event
    time order (oldest first; ties keep arrival order), and an event stamped before
    ``session_since_ms`` (late: older than the session window) updates the history (counters,
    consumed items, feedback) but is not a session action.
    """
    out: dict[str, Update] = {}
    passive, consuming = PASSIVE, CONSUMING
    since = -(2**63) if session_since_ms is None else session_since_ms
    for row in events:
        event_type = row[1]
        if event_type in passive:
            continue
        user_key, session_id, item_id, ts_ms = row[2], row[4], row[5], row[6]
        u = out.get(user_key)
        if u is None:
            u = out[user_key] = Update([], {}, {}, {})
        if event_type == "feedback":
            data = row[10]
            if isinstance(data, str | bytes):
                data = orjson.loads(data)
            kind = data.get("kind") if isinstance(data, dict) else None
            if item_id is not None and kind is not None:
                u.feedback[item_id] = kind
            continue
        live = ts_ms >= since
        if item_id is None:
            if live:
                u.actions.append(
                    {"t": event_type, "i": None, "c": None, "ts": ts_ms, "s": session_id}
                )
            continue
        category = categories.get(item_id)
        if live:
            u.actions.append(
                {"t": event_type, "i": item_id, "c": category, "ts": ts_ms, "s": session_id}
            )
        items = u.items
        items[item_id] = items.get(item_id, 0) + 1
        if event_type in consuming:
            u.consumed[item_id] = max(ts_ms, u.consumed.get(item_id, 0))
        if category is not None:
            u.categories[category] = u.categories.get(category, 0) + 1
    for u in out.values():
        actions = u.actions
        if any(actions[k]["ts"] > actions[k + 1]["ts"] for k in range(len(actions) - 1)):
            actions.sort(key=_ts)  # stable: equal times keep their arrival order
    return out


def _ts(action: Action) -> int:
    return action["ts"]


class RealtimeState(Protocol):
    """A real-time state backend (``memory://`` or ``redis://``)."""

    config: RealtimeConfig
    in_process: bool
    """Whether calls stay in this process (they never wait on a network): such a backend is
    called directly on the request path, any other one under the request's time budget
    (:class:`~tastebud.realtime.guard.RealtimeGuard`)."""

    def apply(self, updates: Mapping[str, Update]) -> None:
        """Apply a batch of per-user updates (one round trip)."""
        ...

    def get(self, user_key: str) -> UserState:
        """One user's state (one round trip)."""
        ...

    def set_features(self, features: Mapping[str, Mapping[str, Any]]) -> None:
        """Store the latest online feature values of many users."""
        ...

    def set_feedback(self, user_key: str, item_id: str, kind: str) -> None:
        """Record explicit feedback at once (the feedback route's read-your-writes path)."""
        ...

    def forget(self, user_key: str) -> None:
        """Remove everything held about a user."""
        ...

    def ping(self) -> bool:
        """Whether the backend answers."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...
