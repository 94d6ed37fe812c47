"""Event time (issue 15, point 6): absurd timestamps are refused with a clear reason, and the live
session follows event time, so a late event updates history but never the current session."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from tastebud.config import Settings

from conftest import Api, event


@pytest.mark.parametrize("stamp", [0, "0001-01-01T00:00:00Z", "1999-12-31T23:59:59.999Z", -5])
def test_timestamps_before_the_earliest_time_are_refused(sqlite_api: Api, stamp: Any) -> None:
    r = sqlite_api.request("POST", "/v1/events", "ingest", json=event(timestamp=stamp))
    assert r.status_code == 422, r.text
    details = r.json()["error"]["details"]
    assert {
        "field": "timestamp",
        "message": "before the earliest accepted time 2000-01-01T00:00:00Z",
    } in details
    assert sqlite_api.services.store.count_events() == 0


def test_the_earliest_time_is_configurable_and_batches_keep_the_good(
    make_api: Callable[[Settings], Api], make_settings: Callable[..., Settings]
) -> None:
    api = make_api(make_settings(earliest_event_time="2026-01-01T00:00:00Z"))
    batch = [event(timestamp="2025-12-31T23:59:59Z"), event(timestamp="2026-01-01T00:00:00Z")]
    body = api.request("POST", "/v1/events/batch", "ingest", json={"events": batch}).json()
    assert [r["status"] for r in body["results"]] == ["rejected", "accepted"]
    assert "2026-01-01T00:00:00Z" in body["results"][0]["reason"]


def test_historical_imports_are_not_bound_by_it(services: Any) -> None:
    from tastebud.importers._common import EventSink, ImportSummary

    summary = ImportSummary()
    sink = EventSink(services.ingestor, summary)
    sink.add(1, event(timestamp=datetime(1997, 9, 20, tzinfo=UTC).timestamp()))
    sink.add(2, event(timestamp=0))  # the epoch itself is still a bug
    sink.flush()
    assert (summary.accepted, summary.rejected) == (1, 1)


@pytest.mark.parametrize("backend", ["memory", pytest.param("redis", marks=pytest.mark.redis)])
def test_a_late_event_does_not_end_the_session(
    backend: str,
    make_api: Callable[[Settings], Api],
    make_settings: Callable[..., Settings],
    request: pytest.FixtureRequest,
) -> None:
    url = "memory://" if backend == "memory" else request.getfixturevalue("redis_url")
    api = make_api(make_settings(redis_url=url))
    now = time.time()
    live = [
        event("page_view", user="late", session_id="now", item_id=f"i{k}", timestamp=now - 10 + k)
        for k in range(3)
    ]
    body = api.request("POST", "/v1/events/batch", "ingest", json={"events": live}).json()
    assert body["accepted"] == 3
    for stamp in (now - 2 * 3600, now - 120):  # two hours late, then two minutes late
        late = event(
            "click",
            user="late",
            session_id="then",
            item_id="old",
            data={"element_id": "x"},
            timestamp=stamp,
        )
        assert api.request("POST", "/v1/events", "ingest", json=late).status_code == 202
        session = api.request("GET", "/v1/users/late/profile", "serve").json()["session"]
        assert session["active"] is True
        assert session["recent_actions"][0]["item_id"] == "i2"
        assert session["events"] == 3  # the current session is the one acted in last
    # The two-hour-late click is history (counted) but not a session action; the two-minute
    # late one sits in event time order.
    state = api.services.realtime.get(api.services.pseudonymizer.user("late"))
    assert [a["i"] for a in state.actions] == ["i2", "i1", "i0", "old"]
    assert state.items["old"] == 2
