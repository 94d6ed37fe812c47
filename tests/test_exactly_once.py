"""Exactly once on every door (issue 15, point 1): an event sent without an ``event_id`` gets a
keyed hash of its content as id, so a retry, a reload or a second send stores nothing twice."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from tastebud.config import Settings
from tastebud.services import build_services
from test_cli import run

from conftest import Api


def _no_id(event_type: str = "page_view", **kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "event_type": event_type,
        "timestamp": "2026-11-20T10:00:00.123Z",
        "user_id": "u-retry",
        "data": {"url": "/pricing"},
    }
    base.update(kw)
    return base


def test_http_retry_of_an_event_without_id_is_a_duplicate(api: Api) -> None:
    first = api.request("POST", "/v1/events", "ingest", json=_no_id())
    again = api.request("POST", "/v1/events", "ingest", json=_no_id())
    assert (first.status_code, first.json()["status"]) == (202, "accepted")
    assert (again.status_code, again.json()["status"]) == (200, "duplicate")
    assert first.json()["event_id"] == again.json()["event_id"]
    assert api.services.store.count_events() == 1


def test_batch_resent_without_ids_stores_nothing_twice(api: Api) -> None:
    events = [_no_id(), _no_id("search", data={"query": "vpn"}), _no_id(user_id="u-2")]
    first = api.request("POST", "/v1/events/batch", "ingest", json={"events": events}).json()
    again = api.request("POST", "/v1/events/batch", "ingest", json={"events": events}).json()
    assert (first["accepted"], first["duplicates"]) == (3, 0)
    assert (again["accepted"], again["duplicates"]) == (0, 3)
    assert [r["event_id"] for r in first["results"]] == [r["event_id"] for r in again["results"]]
    assert api.services.store.count_events() == 3


def test_the_seed_route_is_exactly_once_too(sqlite_api: Api) -> None:
    seed = {
        "timestamp": "2026-11-26T09:15:00.000Z",
        "userId": "u-1842",
        "sessionId": "s-77",
        "eventType": "page_view",
        "data": {"url": "/pricing"},
    }
    statuses = [
        sqlite_api.request("POST", "/api/events", "ingest", json=seed).json()["status"]
        for _ in range(2)
    ]
    assert statuses == ["accepted", "duplicate"]


def test_any_difference_makes_another_event(sqlite_api: Api) -> None:
    variants = [
        _no_id(),
        _no_id(timestamp="2026-11-20T10:00:00.124Z"),  # one millisecond later
        _no_id(user_id="u-other"),
        _no_id(anonymous_id="dev-1", user_id=None),
        _no_id(session_id="s-2"),
        _no_id("click", data={"element_id": "b"}),
        _no_id(data={"url": "/pricing", "title": "Pricing"}),
        _no_id(data={"url": "/pricing"}, context={"device_type": "mobile"}),
        _no_id("content_engagement", data={"item_id": "a-1"}),
        _no_id("content_engagement", data={"item_id": "a-2"}),
    ]
    variants = [{k: v for k, v in ev.items() if v is not None} for ev in variants]
    body = sqlite_api.request("POST", "/v1/events/batch", "ingest", json={"events": variants})
    assert body.json()["accepted"] == len(variants)
    # The same millisecond written another way, and the item in the envelope instead of data,
    # are the same event.
    same = [
        _no_id(timestamp="2026-11-20T11:00:00.123+01:00"),
        _no_id("content_engagement", item_id="a-1", data={}),
    ]
    body = sqlite_api.request("POST", "/v1/events/batch", "ingest", json={"events": same})
    assert body.json()["duplicates"] == 2, body.json()


def test_derived_ids_are_keyed_and_do_not_spell_the_user(tmp_path: Path) -> None:
    ids = []
    for name in ("a", "b"):  # two deployments: each generates its own pseudonym key
        services = build_services(Settings(data_dir=tmp_path / name), migrate=True)
        try:
            ids.append(services.ingestor.ingest([_no_id()]).results[0].event_id)
        finally:
            services.close()
    assert ids[0] != ids[1]
    assert all(i is not None and "u-retry" not in i and len(i) == 32 for i in ids)


@pytest.mark.slow
def test_ingesting_a_file_twice_stores_it_once(tmp_path: Path, secret_env: dict[str, str]) -> None:
    events = [_no_id(), _no_id("search", data={"query": "router"}, user_id="u-9")]
    path = tmp_path / "events.ndjson"
    path.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in events))
    env = {
        "TASTEBUD_PSEUDONYM_KEY": secret_env["pseudonym_key"],
        "TASTEBUD_FERNET_KEYS": secret_env["fernet_keys"],
    }
    first = run(["ingest", str(path)], tmp_path / "data", **env)
    again = run(["ingest", str(path)], tmp_path / "data", **env)
    assert first.returncode == 0 and again.returncode == 0, first.stderr + again.stderr
    assert "2 events accepted, 0 duplicates" in first.stdout + first.stderr
    assert "0 events accepted, 2 duplicates" in again.stdout + again.stderr
    services = build_services(
        Settings(
            data_dir=tmp_path / "data",
            pseudonym_key=secret_env["pseudonym_key"],
            fernet_keys=secret_env["fernet_keys"],
        )
    )
    try:
        assert services.store.count_events() == 2
    finally:
        services.close()
