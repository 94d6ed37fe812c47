"""Real-time state: one contract, run on the in-process backend and on the real Redis."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tastebud.realtime import MemoryState, RealtimeConfig, RealtimeState, make_realtime
from tastebud.realtime.base import Update, updates_from

from conftest import Api, event


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def state(request: pytest.FixtureRequest) -> Any:
    cfg = RealtimeConfig(max_actions=5, max_consumed=3, actions_ttl_s=2)
    if request.param == "memory":
        backend: RealtimeState = MemoryState(cfg)
    else:
        backend = make_realtime(request.getfixturevalue("redis_url"), cfg)
    yield backend
    backend.close()


def row(user: str, kind: str, item: str | None, ts: int, session: str = "s") -> tuple[Any, ...]:
    return ("id", kind, user, None, session, item, ts, ts, "api", 1, None, None)


class TestRealtimeContract:
    def test_unknown_user_is_empty(self, state: RealtimeState) -> None:
        s = state.get("nobody")
        assert s.empty and s.actions == [] and s.features is None

    def test_actions_counters_and_consumed(self, state: RealtimeState) -> None:
        cats = {"a": "vpn", "b": "wifi", "c": "vpn"}
        state.apply(
            updates_from(
                [
                    row("u", "page_view", "a", 1),
                    row("u", "click", "b", 2),
                    row("u", "search", None, 3),
                ],
                cats,
            )
        )
        state.apply(updates_from([row("u", "content_engagement", "c", 4)], cats))
        s = state.get("u")
        assert [a["t"] for a in s.actions] == ["content_engagement", "search", "click", "page_view"]
        assert s.actions[0] == {"t": "content_engagement", "i": "c", "c": "vpn", "ts": 4, "s": "s"}
        assert s.items == {"a": 1, "b": 1, "c": 1}
        assert s.categories == {"vpn": 2, "wifi": 1}
        assert s.consumed == ["c", "a"]  # clicks and searches do not consume
        assert state.get("other").empty

    def test_bounds(self, state: RealtimeState) -> None:
        state.apply(updates_from([row("u", "page_view", f"i{k}", k) for k in range(10)], {}))
        s = state.get("u")
        assert len(s.actions) == 5 and s.actions[0]["i"] == "i9"
        assert s.consumed == ["i9", "i8", "i7"]
        assert sum(s.items.values()) == 10

    def test_actions_expire_counters_stay(self, state: RealtimeState) -> None:
        state.apply(
            {
                "u": Update(
                    actions=[{"t": "click", "i": "a", "c": None, "ts": 1, "s": "s"}], items={"a": 1}
                )
            }
        )
        time.sleep(2.2)
        s = state.get("u")
        assert s.actions == [] and s.items == {"a": 1}

    def test_features_and_forget(self, state: RealtimeState) -> None:
        state.set_features({"u": {"total_sessions": 3, "content_category_interests": ["vpn"]}})
        assert state.get("u").features == {
            "total_sessions": 3,
            "content_category_interests": ["vpn"],
        }
        state.apply(updates_from([row("u", "page_view", "a", 1)], {}))
        state.forget("u")
        assert state.get("u").empty

    def test_feedback_is_kept_without_expiry_and_forgotten_on_request(
        self, state: RealtimeState
    ) -> None:
        fb = (
            "id",
            "feedback",
            "u",
            None,
            "s",
            "a",
            1,
            1,
            "api",
            1,
            {"item_id": "a", "kind": "not_interested"},
            None,
        )
        liked = (
            "id2",
            "feedback",
            "u",
            None,
            "s",
            "b",
            2,
            2,
            "api",
            1,
            '{"item_id": "b", "kind": "like"}',
            None,
        )
        state.apply(updates_from([fb, liked], {}))
        state.set_feedback("u", "c", "dislike")
        s = state.get("u")
        assert s.feedback == {"a": "not_interested", "b": "like", "c": "dislike"}
        assert s.actions == []  # feedback is not a session action
        time.sleep(2.2)  # past the actions' TTL: feedback stays
        assert state.get("u").feedback["a"] == "not_interested"
        state.forget("u")
        assert state.get("u").feedback == {} and state.get("u").empty

    def test_a_late_event_never_becomes_the_current_action(self, state: RealtimeState) -> None:
        # Issue 15, point 6: the session follows event time, not arrival.
        state.apply(
            updates_from(
                [row("u", "page_view", "a", 100, "s2"), row("u", "page_view", "b", 200, "s2")], {}
            )
        )
        state.apply(
            updates_from(
                [row("u", "click", "late", 150, "s1"), row("u", "click", "older", 50, "s1")], {}
            )
        )
        s = state.get("u")
        assert [a["i"] for a in s.actions] == ["b", "late", "a", "older"]
        assert s.actions[0]["s"] == "s2"
        # In one batch too, and at equal times the later arrival is the newer.
        state.apply(
            updates_from(
                [row("v", "click", "x", 9), row("v", "click", "y", 3), row("v", "click", "z", 9)],
                {},
            )
        )
        assert [a["i"] for a in state.get("v").actions] == ["z", "x", "y"]
        # Bounded as before: the oldest event times fall off.
        state.apply(updates_from([row("u", "click", f"o{k}", k) for k in range(1, 4)], {}))
        assert [a["i"] for a in state.get("u").actions] == ["b", "late", "a", "older", "o3"]

    def test_events_older_than_the_session_are_history(self, state: RealtimeState) -> None:
        rows = [row("u", "page_view", "old", 1_000), row("u", "page_view", "new", 9_000)]
        state.apply(updates_from(rows, {"old": "vpn"}, session_since_ms=5_000))
        s = state.get("u")
        assert [a["i"] for a in s.actions] == ["new"]
        assert s.items == {"old": 1, "new": 1} and s.categories == {"vpn": 1}
        assert set(s.consumed) == {"old", "new"}

    def test_ping(self, state: RealtimeState) -> None:
        assert state.ping()


def test_unknown_scheme() -> None:
    with pytest.raises(ValueError, match="memory:// or redis://"):
        make_realtime("mongodb://x")


def test_unreachable_redis_does_not_fail_ingest(make_api: Any, make_settings: Any) -> None:
    api: Api = make_api(make_settings(redis_url="redis://127.0.0.1:1/0"))
    r = api.request("POST", "/v1/events", "ingest", json=event())
    assert r.status_code == 202  # stored; the real-time state is best effort
    assert api.services.store.count_events() == 1
    assert not api.services.realtime.ping()


@pytest.mark.parametrize("backend", ["memory", pytest.param("redis", marks=pytest.mark.redis)])
def test_ingest_updates_realtime_state(
    backend: str, make_api: Any, make_settings: Any, request: pytest.FixtureRequest
) -> None:
    url = "memory://" if backend == "memory" else request.getfixturevalue("redis_url")
    api: Api = make_api(make_settings(redis_url=url))
    api.request("PUT", "/v1/items/art-1", json={"categories": ["vpn"]})
    now = time.time()
    batch = [
        event("page_view", user="rt", item_id="art-1", timestamp=now),
        event("click", user="rt", data={"element_id": "x", "item_id": "art-1"}, timestamp=now),
        event("teleport", user="rt"),
    ]
    api.request("POST", "/v1/events/batch", "ingest", json={"events": batch})
    api.request("POST", "/v1/events/batch", "ingest", json={"events": batch})  # duplicates
    s = api.services.realtime.get(api.services.pseudonymizer.user("rt"))
    assert [a["t"] for a in s.actions] == ["click", "page_view"]  # once each, newest first
    assert s.categories == {"vpn": 2} and s.consumed == ["art-1"]


@pytest.mark.redis
def test_redis_handles_huge_batches_for_one_user(redis_url: str) -> None:
    state = make_realtime(redis_url, RealtimeConfig(max_consumed=100))
    rows = [row("big", "page_view", f"i{k}", k) for k in range(6000)]
    state.apply(updates_from(rows, {}))
    s = state.get("big")
    assert len(s.consumed) == 100 and s.consumed[0] == "i5999"
    assert len(s.actions) == 50 and sum(s.items.values()) == 6000
    state.close()


def test_performance_reports_are_not_actions() -> None:
    state = MemoryState()
    state.apply(
        updates_from([row("u", "page_load", None, 1), row("u", "network_quality", None, 2)], {})
    )
    assert state.get("u").empty
