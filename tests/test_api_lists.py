"""List endpoints with cursor pagination, and users known only from events (issue 15, point 13
and the last clause of point 8): ``GET /v1/items``, ``GET /v1/users``,
``GET /v1/users/{user_id}/events`` and ``GET /v1/users/{user_id}``, on SQLite and PostgreSQL
(the ``api`` fixture), with the examples of docs/api.md's "Browsing" section run as written."""

from __future__ import annotations

import base64
import json
import re
import uuid
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from cryptography.fernet import Fernet

from tastebud.config import Settings

from conftest import Api, event

API_DOC = Path(__file__).resolve().parents[1] / "docs" / "api.md"


def _items(api: Api, items: list[dict[str, Any]]) -> None:
    r = api.request("POST", "/v1/items/batch", json={"items": items})
    assert r.status_code == 200 and r.json()["rejected"] == 0, r.text


def _send(api: Api, events: list[dict[str, Any]]) -> None:
    r = api.request("POST", "/v1/events/batch", "ingest", json={"events": events})
    assert r.status_code == 200 and r.json()["accepted"] == len(events), r.text


def _walk(api: Api, path: str, field: str, scope: str, limit: int, **params: Any) -> list[Any]:
    """Every entry of a list, page by page; checks that every page but the last is full."""
    out: list[Any] = []
    cursor = None
    pages = 0
    while True:
        query = {**params, "limit": limit, **({"cursor": cursor} if cursor else {})}
        r = api.request("GET", path, scope, params=query)
        assert r.status_code == 200, r.text
        body = r.json()
        pages += 1
        out.extend(body[field])
        cursor = body["next_cursor"]
        if cursor is None:
            return out
        assert len(body[field]) == limit
        assert pages < 1000


def _error(r: Any, field: str) -> str:
    assert r.status_code == 422, r.text
    err = r.json()["error"]
    assert err["code"] == "invalid_request"
    assert any(d["field"] == field for d in err["details"]), err
    return str(err["message"])


# -- items ----------------------------------------------------------------------------------------
def test_items_walk_in_id_order_with_category_filter(api: Api) -> None:
    catalogue = []
    for n in range(23):
        categories = [["tools"], ["news", "tools"], ["news"]][n % 3]
        catalogue.append(
            {"item_id": f"it-{n:03d}", "title": f"t{n}", "categories": categories, "hidden": n == 4}
        )
    _items(api, catalogue[::-1])  # insertion order is not the listing order
    everything = _walk(api, "/v1/items", "items", "serve", 5)
    ids = [i["item_id"] for i in everything]
    assert ids == [f"it-{n:03d}" for n in range(23)]  # each exactly once, in order
    # Each entry is what GET /v1/items/{id} answers; hidden items are listed, flagged.
    for entry in (everything[0], everything[4]):
        assert entry == api.request("GET", f"/v1/items/{entry['item_id']}", "serve").json()
    assert everything[4]["hidden"] is True
    # A category matches primary and secondary categories alike.
    tools = [i["item_id"] for i in _walk(api, "/v1/items", "items", "serve", 3, category="tools")]
    assert tools == [f"it-{n:03d}" for n in range(23) if n % 3 in (0, 1)]
    assert _walk(api, "/v1/items", "items", "serve", 2, category="none-such") == []
    # Defaults: 100 a page, so one page here.
    body = api.request("GET", "/v1/items", "serve").json()
    assert len(body["items"]) == 23 and body["next_cursor"] is None


def test_items_added_during_a_walk_are_neither_skipped_nor_repeated(api: Api) -> None:
    _items(api, [{"item_id": f"b-{n:02d}"} for n in range(0, 20, 2)])  # b-00, b-02, ... b-18
    first = api.request("GET", "/v1/items", "serve", params={"limit": 4}).json()
    assert [i["item_id"] for i in first["items"]] == ["b-00", "b-02", "b-04", "b-06"]
    # One item behind the walk's position, one ahead; an item of the first page changes.
    _items(api, [{"item_id": "b-01"}, {"item_id": "b-09"}, {"item_id": "b-02", "title": "new"}])
    rest = _walk(api, "/v1/items", "items", "serve", 4, cursor=first["next_cursor"])
    assert [i["item_id"] for i in rest] == ["b-08", "b-09", "b-10", "b-12", "b-14", "b-16", "b-18"]


def test_items_bad_limit_and_cursor(api: Api) -> None:
    _items(api, [{"item_id": f"c-{n}", "categories": ["x"]} for n in range(5)])
    for limit in ("0", "1001", "-1", "ten"):
        _error(api.request("GET", "/v1/items", "serve", params={"limit": limit}), "query.limit")
    page = api.request("GET", "/v1/items", "serve", params={"limit": 2, "category": "x"}).json()
    cursor = page["next_cursor"]
    body, mac = cursor.split(".")
    flipped = ("B" if body[0] != "B" else "C") + body[1:]
    forged = base64.urlsafe_b64encode(b'["c-0"]').rstrip(b"=").decode() + "." + mac
    for bad in (
        "abc",
        "",
        "x" * 3000,
        cursor + "0",
        cursor[:-1],
        f"{flipped}.{mac}",
        forged,
        "' OR '1'='1",
        "%00",
    ):
        r = api.request("GET", "/v1/items", "serve", params={"category": "x", "cursor": bad})
        assert "cursor" in _error(r, "query.cursor")
    # A cursor continues its own listing and filter only.
    r = api.request("GET", "/v1/items", "serve", params={"category": "y", "cursor": cursor})
    assert "same filters" in _error(r, "query.cursor")
    _error(api.request("GET", "/v1/items", "serve", params={"cursor": cursor}), "query.cursor")
    _error(api.request("GET", "/v1/users", params={"cursor": cursor}), "query.cursor")
    r = api.request("GET", "/v1/items", "serve", params={"category": "x", "cursor": cursor})
    assert [i["item_id"] for i in r.json()["items"]] == ["c-2", "c-3", "c-4"]
    for bad_category in ("", "a\x01b", "x" * 129):
        r = api.request("GET", "/v1/items", "serve", params={"category": bad_category})
        _error(r, "query.category")


# -- users ----------------------------------------------------------------------------------------
def test_users_listing_includes_users_known_only_from_events(api: Api) -> None:
    p = api.services.pseudonymizer
    for n in range(7):  # attributes only
        r = api.request("PUT", f"/v1/users/attr-{n}", json={"segment": f"s{n}"})
        assert r.status_code == 201
    api.request("PUT", "/v1/users/both-0", json={"segment": "pro", "email": "b0@example.org"})
    evs = []
    for n in range(8):  # events only (one of them two events), plus both-0
        evs.append(event(user=f"ev-{n}", timestamp="2026-11-20T10:00:00Z"))
    evs.append(event(user="ev-0", timestamp="2026-11-21T09:30:00Z"))
    evs.append(event(user="both-0", timestamp="2026-11-19T08:00:00Z"))
    _send(api, evs)
    listed = _walk(api, "/v1/users", "users", "admin", 3)
    keys = [u["pseudonym"] for u in listed]
    raw = [f"attr-{n}" for n in range(7)] + [f"ev-{n}" for n in range(8)] + ["both-0"]
    assert keys == sorted(p.user(r) for r in raw)  # each exactly once, in pseudonym order
    by = {u["pseudonym"]: u for u in listed}
    ev0 = by[p.user("ev-0")]
    assert ev0["known_from"] == ["events"] and ev0["event_count"] == 2
    assert ev0["attributes"] is None and ev0["created_at"] is None
    assert ev0["first_event_at"] == "2026-11-20T10:00:00Z"
    assert ev0["last_event_at"] == "2026-11-21T09:30:00Z"
    attr = by[p.user("attr-3")]
    assert attr["known_from"] == ["attributes"] and attr["attributes"]["segment"] == "s3"
    assert attr["event_count"] == 0 and attr["first_event_at"] is None
    assert attr["created_at"] is not None
    both = by[p.user("both-0")]
    assert both["known_from"] == ["attributes", "events"] and both["event_count"] == 1
    # Encrypted attributes are shown decrypted to an admin, as the export shows them.
    assert both["attributes"]["email"] == "b0@example.org"
    # Raw ids are never listed.
    assert not any(r in json.dumps(listed) for r in raw)
    _error(api.request("GET", "/v1/users", params={"limit": 1001}), "query.limit")
    _error(api.request("GET", "/v1/users", params={"cursor": "Zm9v." + "0" * 32}), "query.cursor")


# -- one user's events ----------------------------------------------------------------------------
def test_user_events_newest_first_with_merged_anonymous_history(api: Api) -> None:
    times = [
        "2026-11-20T10:00:00Z",
        "2026-11-20T10:00:00Z",
        "2026-11-20T09:00:00Z",
        "2026-11-21T10:00:00Z",
        "2026-11-20T10:00:00Z",
        "2026-11-19T10:00:00Z",
        "2026-11-20T10:00:00.001Z",
    ]
    mine = [
        event(
            "page_view", user="walker-1", timestamp=ts, session_id=f"s{i}", data={"url": f"/p{i}"}
        )
        for i, ts in enumerate(times)
    ]
    # Anonymous events merged by identify, and one attributed on ingest after the merge.
    anon = [
        event(
            "page_view", user=None, anonymous_id="dev-walker", timestamp=f"2026-11-18T0{i}:00:00Z"
        )
        for i in range(3)
    ]
    for ev in anon:
        del ev["user_id"]
    secret = event(
        "form_submit",
        user="walker-1",
        timestamp="2026-11-22T10:00:00Z",
        data={"form_id": "f", "fields": {"email": "w1@example.org", "plan": "pro"}},
    )
    other = [event(user="walker-2", timestamp="2026-11-20T10:00:00Z") for _ in range(3)]
    _send(api, mine[:4] + anon[:2] + other)
    r = api.request("POST", "/v1/users/walker-1/aliases", json={"anonymous_id": "dev-walker"})
    assert r.status_code == 200 and r.json()["merged_events"] == 2
    _send(api, mine[4:] + anon[2:] + [secret])
    walked = _walk(api, "/v1/users/walker-1/events", "events", "admin", 3)
    ids = [e["event_id"] for e in walked]
    expected = mine + anon + [secret]
    assert sorted(ids) == sorted(e["event_id"] for e in expected)  # each exactly once
    assert len(ids) == len(set(ids))
    # Newest first by event time, then by arrival (the store's id) among equal times.
    store = api.services.store
    arrival = {e: store.get_event(e)["id"] for e in ids}  # type: ignore[index]
    stamps = [datetime.fromisoformat(e["timestamp"]) for e in walked]
    assert [(s, arrival[i]) for s, i in zip(stamps, ids, strict=True)] == sorted(
        zip(stamps, [arrival[i] for i in ids], strict=True), reverse=True
    )
    assert ids[0] == secret["event_id"] and ids[-3:] == [a["event_id"] for a in anon[::-1]]
    tie = [e["event_id"] for e in walked if e["timestamp"] == "2026-11-20T10:00:00Z"]
    assert set(tie) == {mine[n]["event_id"] for n in (0, 1, 4)}
    assert tie == sorted(tie, key=arrival.__getitem__, reverse=True)
    assert tie[0] == mine[4]["event_id"]  # sent in a later batch
    first = walked[0]
    assert set(first) == {
        "event_id",
        "event_type",
        "timestamp",
        "received_at",
        "session_id",
        "item_id",
        "data",
        "context",
        "source",
    }
    # Encrypted fields decrypted as export shows them; dropped ones stay dropped.
    assert first["data"]["fields"] == {"email": "w1@example.org", "plan": "pro"}
    page_view = next(e for e in walked if e["event_id"] == mine[3]["event_id"])
    assert page_view["data"] == {"url": "/p3"} and page_view["session_id"] == "s3"
    assert page_view["source"] == "api" and page_view["timestamp"] == "2026-11-21T10:00:00Z"
    # A cursor continues this user's history only.
    cursor = api.request("GET", "/v1/users/walker-1/events", params={"limit": 2}).json()
    r = api.request("GET", "/v1/users/walker-2/events", params={"cursor": cursor["next_cursor"]})
    _error(r, "query.cursor")
    _error(api.request("GET", "/v1/users/walker-1/events", params={"limit": 0}), "query.limit")
    # The user's summary agrees with the history.
    summary = api.request("GET", "/v1/users/walker-1", "serve").json()
    assert summary["event_count"] == len(expected) and summary["known_from"] == ["events"]
    assert summary["last_event_at"] == "2026-11-22T10:00:00Z"
    assert summary["first_event_at"] == "2026-11-18T00:00:00Z"


def test_user_events_of_a_user_with_attributes_only_and_of_nobody(api: Api) -> None:
    api.request("PUT", "/v1/users/attrs-only", json={"segment": "a"})
    r = api.request("GET", "/v1/users/attrs-only/events")
    assert r.status_code == 200 and r.json() == {"events": [], "next_cursor": None}
    r = api.request("GET", "/v1/users/nobody-at-all/events")
    assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_user"


# -- GET /v1/users/{user_id} ----------------------------------------------------------------------
def test_user_known_from_events_attributes_or_nothing(api: Api) -> None:
    _send(
        api,
        [
            event(user="only-events", timestamp="2026-11-20T10:00:00Z"),
            event(user="only-events", timestamp="2026-11-20T11:00:00Z"),
        ],
    )
    r = api.request("GET", "/v1/users/only-events", "serve")
    assert r.status_code == 200, r.text  # was 404 before issue 15
    assert r.json() == {
        "user_id": "only-events",
        "attributes": {},
        "created_at": None,
        "updated_at": None,
        "known_from": ["events"],
        "first_event_at": "2026-11-20T10:00:00Z",
        "last_event_at": "2026-11-20T11:00:00Z",
        "event_count": 2,
    }
    r = api.request("PUT", "/v1/users/only-events", json={"segment": "pro"})
    assert r.status_code == 201
    assert r.json()["known_from"] == ["attributes", "events"] and r.json()["event_count"] == 2
    got = api.request("GET", "/v1/users/only-events", "serve").json()
    assert got["attributes"]["segment"] == "pro" and got["created_at"] is not None
    assert got["known_from"] == ["attributes", "events"]
    api.request("PUT", "/v1/users/only-attrs", json={"segment": "free", "email": "oa@example.org"})
    got = api.request("GET", "/v1/users/only-attrs", "serve").json()
    assert got["known_from"] == ["attributes"] and got["event_count"] == 0
    assert set(got["attributes"]["email"]) == {"$enc"}  # as stored, for a serve key
    assert got["first_event_at"] is None and got["last_event_at"] is None
    r = api.request("GET", "/v1/users/nothing-stored", "serve")
    assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_user"


# -- scopes ---------------------------------------------------------------------------------------
def test_list_scopes(api: Api) -> None:
    for path in ("/v1/users", "/v1/users/someone/events"):
        for scope in ("serve", "ingest"):
            r = api.request("GET", path, scope)
            assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden", path
        assert api.client.get(path).status_code == 401
    assert api.request("GET", "/v1/items", "ingest").status_code == 403
    assert api.request("GET", "/v1/items", "serve").status_code == 200
    assert api.request("GET", "/v1/items", "admin").status_code == 200
    assert api.request("GET", "/v1/users", "admin").status_code == 200


# -- docs/api.md, "Browsing" ---------------------------------------------------------------------
def _browsing_section() -> str:
    text = API_DOC.read_text()
    return text.split("\n## Browsing\n", 1)[1].split("\n## ", 1)[0]


def test_browsing_examples_in_docs_run_as_written(api: Api) -> None:
    section = _browsing_section()
    commands = re.findall(
        r'^curl -s "\$URL([^"]+)" -H "Authorization: Bearer \$(\w+)_KEY"$', section, re.M
    )
    assert len(commands) == 5
    examples = [json.loads(b) for b in re.findall(r"```json\n(.*?)```", section, re.S)]
    assert len(examples) == 4
    # The data the examples show: the catalogue of docs/api.md's Examples and a user known
    # only from two events.
    _items(
        api,
        [
            {
                "item_id": "article-42",
                "title": "Router guide",
                "categories": ["networking"],
                "type": "article",
                "created_at": "2026-11-01T00:00:00Z",
            },
            {
                "item_id": "article-43",
                "title": "Mesh Wi-Fi",
                "categories": ["networking", "wifi"],
                "type": "article",
                "hidden": True,
            },
            {"item_id": "article-44", "title": "VLANs", "categories": ["networking"]},
        ],
    )
    _send(
        api,
        [
            event(
                "page_view",
                user="u-1842",
                timestamp="2026-11-26T10:00:05Z",
                data={"url": "/guides"},
            ),
            event(
                "click",
                user="u-1842",
                timestamp="2026-11-26T10:02:00Z",
                data={"element_id": "rec-slot-3", "item_id": "article-42"},
            ),
        ],
    )
    answers = []
    nxt = None
    for path, scope in commands:
        if "$NEXT" in path:
            assert nxt is not None
            path = path.replace("$NEXT", nxt)
        r = api.request("GET", path, scope.lower())
        assert r.status_code == 200, (path, r.text)
        answers.append(r.json())
        nxt = r.json().get("next_cursor") or nxt
    items, more, users, events, user = answers
    shown_items, shown_users, shown_events, shown_user = examples
    # Items: the page the example shows, and a second page that continues it.
    assert [i["item_id"] for i in items["items"]] == ["article-42", "article-43"]
    for got, shown in zip(items["items"], shown_items["items"], strict=True):
        assert {k: v for k, v in got.items() if k != "updated_at"} == {
            k: v for k, v in shown.items() if k != "updated_at"
        }
    assert items["next_cursor"].split(".")[0] == shown_items["next_cursor"].split(".")[0]
    assert re.fullmatch(r"[A-Za-z0-9_-]+\.[0-9a-f]{32}", shown_items["next_cursor"])
    assert [i["item_id"] for i in more["items"]] == ["article-44"] and more["next_cursor"] is None
    # Users: one user known from events, with the fields shown.
    (entry,) = users["users"]
    assert set(entry) == set(shown_users["users"][0])
    assert entry["pseudonym"] == api.services.pseudonymizer.user("u-1842")
    for key in (
        "known_from",
        "attributes",
        "created_at",
        "updated_at",
        "first_event_at",
        "last_event_at",
        "event_count",
    ):
        assert entry[key] == shown_users["users"][0][key], key
    assert users["next_cursor"] is shown_users["next_cursor"] is None
    # Events: newest first, as shown (ids and receive times are the deployment's own).
    assert len(events["events"]) == len(shown_events["events"]) == 2
    for got, shown in zip(events["events"], shown_events["events"], strict=True):
        assert set(got) == set(shown)
        for key in set(shown) - {"event_id", "received_at"}:
            assert got[key] == shown[key], key
        datetime.fromisoformat(got["received_at"])
    assert events["next_cursor"] is shown_events["next_cursor"] is None
    assert user == shown_user


def test_cursor_body_is_the_last_key(sqlite_api: Api) -> None:
    """The cursor's readable part is the last key (so the docs' example is what a deployment
    answers); its signature is what makes it opaque to edits."""
    _items(sqlite_api, [{"item_id": f"k-{n}"} for n in range(3)])
    cursor = sqlite_api.request("GET", "/v1/items", "serve", params={"limit": 1}).json()
    body = cursor["next_cursor"].split(".")[0]
    assert orjson.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))) == ["k-0"]


@pytest.mark.parametrize("path", ["/v1/items", "/v1/users", "/v1/users/u-x/events"])
def test_lists_never_answer_5xx_to_odd_cursors(sqlite_api: Api, path: str) -> None:
    for bad in (".", "a.", "." + "0" * 32, "A" * 2000 + "." + "0" * 32, str(uuid.uuid4())):
        r = sqlite_api.request("GET", path, params={"cursor": bad})
        _error(r, "query.cursor")


def test_a_field_no_key_decrypts_is_listed_as_stored(
    make_api: Callable[[Settings], Api], make_settings: Callable[..., Settings]
) -> None:
    """After its Fernet key was removed, an encrypted field is shown as stored, not a 500."""
    first = make_api(make_settings())
    ev = event(
        "form_submit",
        user="rotated-1",
        data={"form_id": "f", "fields": {"email": "r1@example.org"}},
    )
    _send(first, [ev])
    first.request("PUT", "/v1/users/rotated-1", json={"email": "r1@example.org"})
    later = make_api(make_settings(fernet_keys=Fernet.generate_key().decode()))
    (stored,) = later.request("GET", "/v1/users/rotated-1/events").json()["events"]
    assert set(stored["data"]["fields"]["email"]) == {"$enc"}
    (user,) = later.request("GET", "/v1/users").json()["users"]
    assert set(user["attributes"]["email"]) == {"$enc"}
    assert "r1@example.org" not in later.request("GET", "/v1/users").text
