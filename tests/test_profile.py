"""``GET /v1/users/{id}/profile``: snapshot features, live session, both real-time backends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tastebud.features import build_snapshot, publish_snapshot
from tastebud.simulator import SimConfig, Simulator

from conftest import Api, event


@pytest.mark.parametrize("backend", ["memory", pytest.param("redis", marks=pytest.mark.redis)])
def test_profile_from_snapshot_and_session(
    backend: str, make_api: Any, make_settings: Any, request: pytest.FixtureRequest
) -> None:
    url = "memory://" if backend == "memory" else request.getfixturevalue("redis_url")
    api: Api = make_api(make_settings(redis_url=url))
    start = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(
        days=15
    )
    sim = Simulator(SimConfig(users=60, items=120, days=14, seed=2, start=start))
    api.request("POST", "/v1/items/batch", json={"items": list(sim.items())})
    events = list(sim.events())
    for i in range(0, len(events), 1000):
        api.request("POST", "/v1/events/batch", "ingest", json={"events": events[i : i + 1000]})
    user = max(sim.truth()["users"].items(), key=lambda kv: kv[1]["sessions_per_day"])[0]
    services = api.services

    empty = api.request("GET", f"/v1/users/{user}/profile", "serve").json()
    assert empty["feature_source"] == "none" and empty["features"] == {}

    snap = build_snapshot(services.store)
    services.online.cache_seconds = 0
    by_db = api.request("GET", f"/v1/users/{user}/profile", "serve").json()
    assert by_db["feature_source"] == "snapshot"
    assert by_db["features"]["total_sessions"] >= 1
    assert by_db["segment"] and by_db["lifecycle_cohort"] in {"new", "active", "dormant", "churned"}

    publish_snapshot(services.store, services.realtime, snap.snapshot_id)
    now = datetime.now(UTC).isoformat()
    live = [
        event("page_view", user=user, timestamp=now, item_id="nb-item-000001", session_id="live-1"),
        event(
            "click",
            user=user,
            timestamp=now,
            session_id="live-1",
            data={"element_id": "card", "item_id": "nb-item-000002"},
        ),
    ]
    api.request("POST", "/v1/events/batch", "ingest", json={"events": live})
    profile = api.request("GET", f"/v1/users/{user}/profile", "serve").json()
    assert profile["feature_source"] == "realtime"
    session = profile["session"]
    assert session["available"] and session["active"] and session["events"] == 2
    assert session["recent_actions"][0]["type"] == "click"
    categories = {i["item_id"]: i["categories"][0] for i in sim.items()}
    first_live = categories["nb-item-000002"]
    assert profile["top_interests"][0] in {first_live, categories["nb-item-000001"]}
    assert api.request("GET", f"/v1/users/{user}/profile", "ingest").status_code == 403


def test_profile_survives_a_dead_realtime_store(make_api: Any, make_settings: Any) -> None:
    api: Api = make_api(make_settings(redis_url="redis://127.0.0.1:1/0"))
    r = api.request("GET", "/v1/users/someone/profile", "serve")
    assert r.status_code == 200
    assert r.json()["session"]["available"] is False
