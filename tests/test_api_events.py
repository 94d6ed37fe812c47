"""Event collection over HTTP, on SQLite and PostgreSQL: happy paths and every kind of bad input."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from conftest import Api, event


def test_single_event_accepted_then_duplicate(api: Api) -> None:
    ev = event("search", data={"query": "vpn"})
    first = api.request("POST", "/v1/events", "ingest", json=ev)
    assert first.status_code == 202
    assert first.json() == {"event_id": ev["event_id"], "status": "accepted"}
    again = api.request("POST", "/v1/events", "ingest", json=ev)
    assert again.status_code == 200
    assert again.json()["status"] == "duplicate"
    assert api.services.store.count_events() == 1


def test_event_id_is_generated_when_absent(api: Api) -> None:
    ev = event()
    del ev["event_id"]
    r = api.request("POST", "/v1/events", "ingest", json=ev)
    assert r.status_code == 202
    stored = api.services.store.get_event(r.json()["event_id"])
    assert stored is not None and stored["event_type"] == "page_view"


def test_stored_row_is_pseudonymized_and_typed(api: Api) -> None:
    ev = event(
        "content_engagement",
        user="alice@example.com",
        session_id="s9",
        data={"item_id": "art-1", "time_spent_ms": 1200, "scroll_depth": 0.5},
        context={"device_type": "Tablet", "evil": "x"},
    )
    assert api.request("POST", "/v1/events", "ingest", json=ev).status_code == 202
    row = api.services.store.get_event(ev["event_id"])
    assert row is not None
    assert row["user_key"] == api.services.pseudonymizer.user("alice@example.com")
    assert row["item_id"] == "art-1" and row["session_id"] == "s9"
    assert row["data"] == {"time_spent_ms": 1200.0, "scroll_depth": 0.5, "shared": False}
    assert row["context"] == {"device_type": "tablet"}
    assert row["ts_ms"] == int(datetime(2026, 11, 20, 10, tzinfo=UTC).timestamp() * 1000)
    assert abs(row["received_ms"] / 1000 - datetime.now(UTC).timestamp()) < 60


def test_batch_mixed_good_and_bad(api: Api) -> None:
    good1, good2 = event(), event("search", data={"query": "router"})
    bad_type = event("teleport")
    bad_ts = event(timestamp="2026-11-20 10:00")
    future = event(timestamp=(datetime.now(UTC) + timedelta(minutes=10)).isoformat())
    late = event(timestamp="2019-01-01T00:00:00Z")
    body = {"events": [good1, bad_type, good2, bad_ts, "not an object", future, late]}
    r = api.request("POST", "/v1/events/batch", "ingest", json=body)
    assert r.status_code == 200
    out = r.json()
    assert (out["accepted"], out["duplicates"], out["rejected"]) == (3, 0, 4)
    statuses = [x["status"] for x in out["results"]]
    assert statuses == [
        "accepted",
        "rejected",
        "accepted",
        "rejected",
        "rejected",
        "rejected",
        "accepted",
    ]
    reasons = [x["reason"] for x in out["results"]]
    assert reasons[1].startswith("event_type: must be one of")
    assert "timestamp" in reasons[3]
    assert reasons[4] == "each event must be a JSON object"
    assert reasons[5] == "timestamp: more than 300 s in the future"
    assert out["results"][1]["event_id"] == bad_type["event_id"]
    assert api.services.store.count_events() == 3


def test_same_batch_twice_stores_nothing_twice(api: Api) -> None:
    batch = {"events": [event() for _ in range(50)]}
    first = api.request("POST", "/v1/events/batch", "ingest", json=batch).json()
    second = api.request("POST", "/v1/events/batch", "ingest", json=batch).json()
    assert (first["accepted"], first["duplicates"]) == (50, 0)
    assert (second["accepted"], second["duplicates"]) == (0, 50)
    assert api.services.store.count_events() == 50


def test_repeated_id_inside_one_batch_is_a_duplicate(api: Api) -> None:
    ev = event()
    out = api.request("POST", "/v1/events/batch", "ingest", json={"events": [ev, ev]}).json()
    assert [x["status"] for x in out["results"]] == ["accepted", "duplicate"]


def test_oversize_batches_get_413(sqlite_api: Api) -> None:
    too_many = {"events": [event() for _ in range(1001)]}
    r = sqlite_api.request("POST", "/v1/events/batch", "ingest", json=too_many)
    assert r.status_code == 413
    assert r.json()["error"]["code"] == "payload_too_large"
    assert "1,000" in r.json()["error"]["message"]
    huge = {"events": [event(data={"title": "x" * 500, "pad": "y" * 1100}) for _ in range(700)]}
    body = orjson.dumps(huge)
    assert len(body) > 1 << 20
    r = sqlite_api.request(
        "POST",
        "/v1/events/batch",
        "ingest",
        content=body,
        headers={"Content-Type": "application/json"},
    )
    assert r.status_code == 413
    assert sqlite_api.services.store.count_events() == 0


def test_single_event_body_limit(sqlite_api: Api) -> None:
    r = sqlite_api.request("POST", "/v1/events", "ingest", json=event(data={"blob": "z" * 70_000}))
    assert r.status_code == 413


def test_malformed_json_and_wrong_shapes(sqlite_api: Api) -> None:
    h = {"Content-Type": "application/json"}
    for path in ("/v1/events", "/v1/events/batch", "/api/events"):
        r = sqlite_api.request("POST", path, "ingest", content=b'{"event_type": ', headers=h)
        assert r.status_code == 400, path
        assert r.json()["error"]["code"] == "malformed_json"
        r = sqlite_api.request("POST", path, "ingest", content=b"", headers=h)
        assert r.status_code == 400, path
    r = sqlite_api.request("POST", "/v1/events/batch", "ingest", json=[event()])
    assert r.status_code == 422
    assert 'the body must be {"events": [...]}' in r.json()["error"]["message"]
    r = sqlite_api.request("POST", "/v1/events/batch", "ingest", json={"events": "x"})
    assert r.status_code == 422


def test_single_bad_event_is_422_with_details(api: Api) -> None:
    r = api.request(
        "POST", "/v1/events", "ingest", json=event("search", data={"query": 12}, user_id=None)
    )
    assert r.status_code == 422
    err = r.json()["error"]
    assert err["code"] == "invalid_event"
    fields = {d["field"] for d in err["details"]}
    assert "data.query" in fields or "event" in fields
    assert api.services.store.count_events() == 0


def test_missing_ids_rejected(api: Api) -> None:
    ev = event()
    del ev["user_id"]
    r = api.request("POST", "/v1/events", "ingest", json=ev)
    assert r.status_code == 422
    assert "one of user_id or anonymous_id is required" in r.json()["error"]["message"]


def test_seed_track_event_payload(api: Api) -> None:
    seed = {
        "timestamp": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        "userId": "u-1",
        "sessionId": "s-1",
        "eventType": "page_view",
        "data": {"url": "/pricing"},
        "context": {"userAgent": "Mozilla/5.0", "url": "https://x.example/p", "referrer": ""},
    }
    r = api.request("POST", "/api/events", "ingest", json=seed)
    assert r.status_code == 202, r.text
    row = api.services.store.get_event(r.json()["event_id"])
    assert row is not None
    assert row["context"] == {
        "user_agent": "Mozilla/5.0",
        "url": "https://x.example/p",
        "referrer": "",
    }
    assert row["session_id"] == "s-1"


def test_consent_opt_out_mode(api: Api) -> None:
    assert api.request("POST", "/v1/events", "ingest", json=event(user="c1")).status_code == 202
    r = api.request("PUT", "/v1/users/c1/consent", "ingest", json={"analytics": False})
    assert r.status_code == 200
    assert r.json()["analytics"] == {
        "granted": False,
        "explicit": True,
        "updated_at": r.json()["analytics"]["updated_at"],
    }
    r = api.request("POST", "/v1/events", "ingest", json=event(user="c1"))
    assert r.status_code == 403
    assert r.json()["error"]["code"] == "consent_required"
    batch = {"events": [event(user="c1"), event(user="c2")]}
    out = api.request("POST", "/v1/events/batch", "ingest", json=batch).json()
    assert [x["status"] for x in out["results"]] == ["rejected", "accepted"]
    assert out["results"][0]["reason"].startswith("consent")
    api.request("PUT", "/v1/users/c1/consent", "ingest", json={"analytics": True})
    assert api.request("POST", "/v1/events", "ingest", json=event(user="c1")).status_code == 202


def test_consent_opt_in_mode(make_api: Any, make_settings: Any) -> None:
    api = make_api(make_settings(consent_mode="opt-in"))
    r = api.request("POST", "/v1/events", "ingest", json=event(user="n1"))
    assert r.status_code == 403
    got = api.request("GET", "/v1/users/n1/consent", "serve").json()
    assert got["mode"] == "opt-in" and got["analytics"]["granted"] is False
    api.request("PUT", "/v1/users/n1/consent", "ingest", json={"analytics": True})
    assert api.request("POST", "/v1/events", "ingest", json=event(user="n1")).status_code == 202
    anon = event(user_id=None, anonymous_id="dev-1")
    del anon["user_id"]
    assert api.request("POST", "/v1/events", "ingest", json=anon).status_code == 403
    api.request("PUT", "/v1/users/dev-1/consent?anonymous=true", "ingest", json={"analytics": True})
    assert api.request("POST", "/v1/events", "ingest", json=anon).status_code == 202


def test_consent_body_validation(sqlite_api: Api) -> None:
    r = sqlite_api.request("PUT", "/v1/users/u/consent", "ingest", json={})
    assert r.status_code == 422
    assert "at least one" in r.json()["error"]["message"]
    r = sqlite_api.request("PUT", "/v1/users/u/consent", "ingest", json={"analytics": "maybe"})
    assert r.status_code == 422
    r = sqlite_api.request("PUT", "/v1/users/u/consent", "ingest", json={"marketing": True})
    assert r.status_code == 422


def test_aliases_merge_anonymous_history(api: Api) -> None:
    def anon_event() -> dict[str, Any]:
        ev = event(anonymous_id="cookie-7")
        del ev["user_id"]
        return ev

    api.request("POST", "/v1/events/batch", "ingest", json={"events": [anon_event(), anon_event()]})
    r = api.request("POST", "/v1/users/u-7/aliases", "ingest", json={"anonymous_id": "cookie-7"})
    assert r.status_code == 403  # merging histories is admin
    r = api.request("POST", "/v1/users/u-7/aliases", "admin", json={"anonymous_id": "cookie-7"})
    assert r.status_code == 200 and r.json() == {"merged_events": 2, "created": True}
    assert api.request(
        "POST", "/v1/users/u-7/aliases", "admin", json={"anonymous_id": "cookie-7"}
    ).json() == {"merged_events": 0, "created": False}
    api.request("POST", "/v1/events", "ingest", json=anon_event())  # after identify
    user_key = api.services.pseudonymizer.user("u-7")
    assert api.services.store.count_events(user_key=user_key) == 3
    r = api.request("POST", "/v1/users/other/aliases", "admin", json={"anonymous_id": "cookie-7"})
    assert r.status_code == 409


def test_every_problem_is_reported_once(sqlite_api: Api) -> None:
    # Issue 15, point 9: field errors, cross-field rules and time rules, one entry each.
    bad = {
        "event_type": "rating",
        "timestamp": "2099-01-01T00:00:00Z",
        "data": {"value": "high"},
        "userid": "u-1",
    }
    r = sqlite_api.request("POST", "/v1/events", "ingest", json=bad)
    assert r.status_code == 422
    details = r.json()["error"]["details"]
    assert details == [
        {
            "field": "data.value",
            "message": "Input should be a valid number, unable to parse string as a number",
        },
        {"field": "userid", "message": "Extra inputs are not permitted"},
        {"field": "event", "message": "one of user_id or anonymous_id is required"},
        {"field": "event", "message": "a rating event needs item_id (in the envelope or in data)"},
        {"field": "timestamp", "message": "more than 300 s in the future"},
    ]
    assert len({(d["field"], d["message"]) for d in details}) == len(details)
    # The same entries for the same event in a batch, with its code.
    batch = sqlite_api.request(
        "POST", "/v1/events/batch", "ingest", json={"events": [bad, event()]}
    ).json()
    rejected = batch["results"][0]
    assert rejected["details"] == details and rejected["code"] == "invalid_event"
    assert batch["results"][1] == {
        "event_id": batch["results"][1]["event_id"],
        "status": "accepted",
        "reason": None,
    }
    # Bounded: at most 50 entries, however many problems.
    many = {**event(), **{f"extra_{k}": k for k in range(80)}}
    r = sqlite_api.request("POST", "/v1/events", "ingest", json=many)
    assert r.status_code == 422 and len(r.json()["error"]["details"]) == 50
    # Request bodies too: every problem of the model, not the first.
    r = sqlite_api.request(
        "PUT", "/v1/users/u-1", json={"skill_level": "wizard", "segment": 5, "country": "France"}
    )
    assert {d["field"] for d in r.json()["error"]["details"]} == {
        "skill_level",
        "segment",
        "country",
    }
