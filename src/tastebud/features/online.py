"""Online lookup: a user's latest features and live session, in milliseconds.

Features come from the real-time backend (published there by every snapshot build), else from
the database's latest snapshot (one primary-key read). The session summary comes from the
real-time state that ingest keeps current.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import NotRequired

import orjson
from pydantic import JsonValue
from sqlalchemy import select
from typing_extensions import TypedDict

from tastebud.features.offline import FeatureValues, latest_snapshot, snapshot_values
from tastebud.monitoring import get_logger
from tastebud.realtime import RealtimeState, UserState
from tastebud.store import Store
from tastebud.store.tables import feature_values

__all__ = [
    "OnlineFeatures",
    "Profile",
    "RecentAction",
    "SessionSummary",
    "publish_snapshot",
]

_log = get_logger(__name__)


class RecentAction(TypedDict):
    """One action of the live session, newest first."""

    type: str
    item_id: str | None
    category: str | None
    at_ms: int


class SessionSummary(TypedDict):
    """The live session (``consumed`` and ``feedback`` only when the real-time store
    answered)."""

    available: bool
    active: bool
    events: int
    categories: dict[str, int]
    recent_actions: list[RecentAction]
    consumed: NotRequired[list[str]]
    feedback: NotRequired[dict[str, str]]


class Profile(TypedDict):
    """What :meth:`OnlineFeatures.profile` returns (the body of the profile endpoint, without
    the user id)."""

    features: FeatureValues
    feature_source: str
    top_interests: list[str]
    segment: JsonValue
    lifecycle_cohort: JsonValue
    session: SessionSummary


def publish_snapshot(store: Store, realtime: RealtimeState, snapshot_id: int) -> int:
    """Copy a snapshot's user features into the real-time backend; returns users published."""
    values = snapshot_values(store, snapshot_id, "user")
    realtime.set_features(values)
    return len(values)


class OnlineFeatures:
    """Reads features and session state for serving (and the profile endpoint)."""

    def __init__(self, store: Store, realtime: RealtimeState, *, cache_seconds: float = 10.0):
        self.store = store
        self.realtime = realtime
        self.cache_seconds = cache_seconds
        self._snapshot: tuple[float, int | None] = (0.0, None)
        """When the latest snapshot's id was read, and the id (``None``: no snapshot)."""
        self._lock = threading.Lock()

    def _latest(self) -> int | None:
        """The latest snapshot's id, read at most every ``cache_seconds``."""
        now = time.monotonic()
        with self._lock:
            at, snapshot_id = self._snapshot
            if now - at < self.cache_seconds:
                return snapshot_id
        snap = latest_snapshot(self.store)
        snapshot_id = None if snap is None else snap["id"]
        with self._lock:
            self._snapshot = (now, snapshot_id)
        return snapshot_id

    def state(self, user_key: str) -> tuple[UserState | None, bool]:
        """The user's real-time state, and whether the backend answered."""
        try:
            return self.realtime.get(user_key), True
        except Exception as exc:  # noqa: BLE001 - a backend outage degrades, never fails
            _log.warning("real-time state unavailable", error_type=type(exc).__name__)
            return None, False

    def features(self, user_key: str, state: UserState | None = None) -> tuple[FeatureValues, str]:
        """Latest feature values and where they came from (``realtime``, ``snapshot``, ``none``)."""
        if state is not None and state.features:
            return state.features, "realtime"
        snapshot_id = self._latest()
        if snapshot_id is None:
            return {}, "none"
        q = select(feature_values.c.vals).where(
            feature_values.c.snapshot_id == snapshot_id,
            feature_values.c.entity == "user",
            feature_values.c.entity_key == user_key,
        )
        with self.store.engine.connect() as conn:
            raw = conn.execute(q).scalar_one_or_none()
        if raw is None:
            return {}, "none"
        return (orjson.loads(raw) if isinstance(raw, str) else dict(raw)), "snapshot"

    def profile(self, user_key: str, now_ms: int) -> Profile:
        """Features, top interests (live session categories first, then the snapshot's),
        segment, cohort and the current session."""
        state, live = self.state(user_key)
        values, source = self.features(user_key, state)
        interests: list[str] = []
        session: SessionSummary = {
            "available": live,
            "active": False,
            "events": 0,
            "categories": {},
            "recent_actions": [],
        }
        if state is not None:
            recent = state.actions
            current = recent[0]["s"] if recent else None
            in_session = [a for a in recent if a.get("s") == current]
            categories = Counter(c for a in in_session if (c := a.get("c")))
            session["active"] = bool(recent) and now_ms - int(recent[0]["ts"]) < 30 * 60 * 1000
            session["events"] = len(in_session)
            session["categories"] = dict(categories)
            session["recent_actions"] = [
                {"type": a["t"], "item_id": a["i"], "category": a["c"], "at_ms": a["ts"]}
                for a in recent[:10]
            ]
            session["consumed"] = state.consumed[:20]
            session["feedback"] = dict(sorted(state.feedback.items())[:100])
            interests = [c for c, _ in categories.most_common()]
        stored = values.get("content_category_interests")
        for interest in stored if isinstance(stored, list) else []:
            if isinstance(interest, str) and interest not in interests:
                interests.append(interest)
        return {
            "features": values,
            "feature_source": source,
            "top_interests": interests[:5],
            "segment": values.get("segment"),
            "lifecycle_cohort": values.get("lifecycle_cohort"),
            "session": session,
        }
