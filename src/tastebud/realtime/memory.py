"""The in-process backend (``memory://``): correct with a single API process."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import JsonValue

from tastebud.realtime.base import Action, RealtimeConfig, Update, UserState

__all__ = ["MemoryState"]


class _User:
    __slots__ = (
        "actions",
        "actions_until",
        "categories",
        "consumed",
        "features",
        "items",
        "until",
    )

    def __init__(self) -> None:
        self.actions: list[Action] = []  # newest first
        self.actions_until = 0.0
        self.items: dict[str, int] = {}
        self.categories: dict[str, int] = {}
        self.consumed: dict[str, int] = {}
        self.features: dict[str, JsonValue] | None = None
        self.until = 0.0


def _newest_first(action: Action) -> int:
    return -action["ts"]


class MemoryState:
    """Real-time state in a dict, with the same TTLs and bounds as the Redis backend.

    Args:
        config: Sizes and lifetimes.
        clock: Seconds since the epoch (tests pass a fake clock).
    """

    in_process = True
    """Calls never wait on a network: serving calls this backend directly."""

    def __init__(
        self, config: RealtimeConfig | None = None, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.config = config or RealtimeConfig()
        self._users: dict[str, _User] = {}
        # Explicit feedback never expires (a not-interested item must never come back).
        self._feedback: dict[str, dict[str, str]] = {}
        self._lock = threading.Lock()
        self._clock = clock
        self._applied = 0

    def _user(self, key: str, now: float) -> _User:
        u = self._users.get(key)
        if u is None or u.until < now:
            u = self._users[key] = _User()
        return u

    def apply(self, updates: Mapping[str, Update]) -> None:
        cfg = self.config
        with self._lock:
            now = self._clock()
            for key, up in updates.items():
                u = self._user(key, now)
                if up.actions:
                    if u.actions_until < now:
                        u.actions = []
                    newest_first = list(reversed(up.actions))
                    if u.actions and newest_first[-1]["ts"] < u.actions[0]["ts"]:
                        # A late event: merged by event time (stable: at equal times the
                        # later arrival comes first), never made the current action.
                        u.actions = sorted([*newest_first, *u.actions], key=_newest_first)
                    else:
                        u.actions[:0] = newest_first
                    del u.actions[cfg.max_actions :]
                    u.actions_until = now + cfg.actions_ttl_s
                for item, n in up.items.items():
                    u.items[item] = u.items.get(item, 0) + n
                for cat, n in up.categories.items():
                    u.categories[cat] = u.categories.get(cat, 0) + n
                u.consumed.update(up.consumed)
                if len(u.consumed) > cfg.max_consumed:
                    keep = sorted(u.consumed.items(), key=lambda kv: kv[1])[-cfg.max_consumed :]
                    u.consumed = dict(keep)
                u.until = now + cfg.counters_ttl_s
                if up.feedback:
                    self._feedback.setdefault(key, {}).update(up.feedback)
            self._applied += 1
            if self._applied % 1000 == 0:  # drop expired users now and then: memory is bounded
                self._users = {k: v for k, v in self._users.items() if v.until >= now}

    def get(self, user_key: str) -> UserState:
        with self._lock:
            now = self._clock()
            u = self._users.get(user_key)
            feedback = dict(self._feedback.get(user_key, {}))
            if u is None or u.until < now:
                return UserState([], {}, {}, [], None, feedback)
            actions = list(u.actions) if u.actions_until >= now else []
            consumed = [i for i, _ in sorted(u.consumed.items(), key=lambda kv: -kv[1])]
            return UserState(
                actions,
                dict(u.items),
                dict(u.categories),
                consumed,
                dict(u.features) if u.features is not None else None,
                feedback,
            )

    def set_feedback(self, user_key: str, item_id: str, kind: str) -> None:
        with self._lock:
            self._feedback.setdefault(user_key, {})[item_id] = kind

    def set_features(self, features: Mapping[str, Mapping[str, Any]]) -> None:
        with self._lock:
            now = self._clock()
            for key, values in features.items():
                u = self._user(key, now)
                u.features = dict(values)
                u.until = max(u.until, now + self.config.counters_ttl_s)

    def forget(self, user_key: str) -> None:
        with self._lock:
            self._users.pop(user_key, None)
            self._feedback.pop(user_key, None)

    def ping(self) -> bool:
        return True

    def close(self) -> None:
        return None

    def __repr__(self) -> str:
        return f"MemoryState({len(self._users)} users)"
