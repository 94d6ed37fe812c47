"""The personalization engine over HTTP (issue 8): an event changes the very next answer,
not-interested items never come back, cold start by context and by session, the real-time store
down, the cache across two processes, re-ranking with text variants, similar items and
impressions."""

from __future__ import annotations

import secrets
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from cryptography.fernet import Fernet
from pydantic import BaseModel

from tastebud.config import Settings
from tastebud.registry import promote
from tastebud.services import build_services
from tastebud.serving.coldstart import ListKind
from tastebud.simulator import SimConfig, Simulator
from tastebud.training.recommender_jobs import train_recommendations
from tastebud.worker import job_context
from test_jobs import ingest

from conftest import Api, free_port

USERS = 150


def _secrets() -> dict[str, str]:
    return {"pseudonym_key": secrets.token_hex(32), "fernet_keys": Fernet.generate_key().decode()}


def prepare(data_dir: Path, keys: dict[str, str], **overrides: Any) -> Settings:
    """A data dir with simulated traffic, user attributes and a production model."""
    settings = Settings(data_dir=data_dir, **keys, **overrides)
    services = build_services(settings, migrate=True)
    sim = Simulator(SimConfig(users=USERS, items=200, days=20, seed=3))
    assert services.catalog.put_items(list(sim.items()), 0).count("rejected") == 0
    assert services.catalog.put_users(list(sim.users()), 0).count("rejected") == 0
    ingest(services, list(sim.events()))
    ctx = job_context(services, "test")
    mv = train_recommendations(ctx, model="tastebud_seq", tuning=False)
    promote(
        services.registry,
        settings.governance,
        "recommendations",
        mv.version,
        actor="test",
        force=True,
        reason="serving tests",
    )
    services.close()
    return settings


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    data_dir = tmp_path_factory.mktemp("serving") / "data"
    keys = _secrets()
    prepare(data_dir, keys)
    return data_dir, keys


@pytest.fixture
def api(prepared: tuple[Path, dict[str, str]], make_api: Any, tmp_path: Path) -> Api:
    """The API on a copy of the prepared data dir (tests change state)."""
    import shutil

    data_dir, keys = prepared
    copy = tmp_path / "data"
    shutil.copytree(data_dir, copy)
    return make_api(Settings(data_dir=copy, **keys))  # type: ignore[no-any-return]


def recs(api: Api, user: str, **params: Any) -> dict[str, Any]:
    r = api.request("GET", f"/v1/users/{user}/recommendations", "serve", params=params)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    body["_headers"] = dict(r.headers)
    return body


def send(api: Api, user: str, items: list[str], kind: str = "page_view") -> None:
    now = time.time()
    events = [
        {
            "event_type": kind,
            "user_id": user,
            "timestamp": now + i / 1000,
            "session_id": "live",
            "item_id": item,
            "data": {"url": f"/i/{item}"},
        }
        for i, item in enumerate(items)
    ]
    r = api.request("POST", "/v1/events/batch", "ingest", json={"events": events})
    assert r.status_code == 200 and r.json()["accepted"] == len(items), r.text


def category_of(api: Api, item: str) -> str | None:
    r = api.request("GET", f"/v1/items/{item}", "serve")
    return r.json().get("category") if r.status_code == 200 else None


def test_an_event_changes_the_next_answer(api: Api) -> None:
    user = "nb-user-0000007"
    before = recs(api, user, k=10)
    assert before["mode"] == "personalized" and len(before["items"]) == 10
    assert before["_headers"]["x-tastebud-model"] == "recommendations/v1"
    assert all(0.0 <= i["score"] <= 1.0 for i in before["items"])
    assert recs(api, user, k=10)["cached"]  # same state, same model: the cache answers
    # The user now browses three items of one category: they leave the list (consumed) and
    # that category gains ground.
    top = before["items"][0]["item_id"]
    pool = [i["item_id"] for i in recs(api, "nb-user-0000050", k=30)["items"]]
    cat = Counter(category_of(api, i) for i in pool).most_common(1)[0][0]
    browse = [top, *[i for i in pool if category_of(api, i) == cat and i != top][:2]]
    send(api, user, browse)
    after = recs(api, user, k=10)
    assert not after["cached"] and after["mode"] == "personalized"
    got = [i["item_id"] for i in after["items"]]
    assert not set(got) & set(browse)  # just consumed: excluded
    share = lambda body: sum(category_of(api, i["item_id"]) == cat for i in body["items"])  # noqa: E731
    assert share(after) > share(before)
    reasons = {i["reason"]["type"] for i in after["items"]}
    assert "because_you_watched" in reasons or "session_category" in reasons


def test_not_interested_never_comes_back(api: Api) -> None:
    user = "nb-user-0000011"
    first = recs(api, user, k=5)["items"][0]["item_id"]
    r = api.request(
        "POST",
        f"/v1/users/{user}/feedback",
        "serve",
        json={"item_id": first, "kind": "not_interested"},
    )
    assert r.status_code == 202 and r.json()["status"] == "recorded"
    assert first not in [i["item_id"] for i in recs(api, user, k=50)["items"]]
    # Even when asked for its category, or after more activity.
    send(api, user, ["nb-item-000001"])
    assert first not in [i["item_id"] for i in recs(api, user, k=100)["items"]]
    bad = api.request(
        "POST", f"/v1/users/{user}/feedback", "serve", json={"item_id": first, "kind": "meh"}
    )
    assert bad.status_code == 422
    stored = api.services.store.count_events(event_type="feedback")
    assert stored == 1


def test_cold_start_by_context_and_by_session(api: Api) -> None:
    cold = recs(api, "brand-new-user", k=10, device="mobile", hour=20)
    assert cold["mode"] == "cold_start" and len(cold["items"]) == 10
    assert cold["items"][0]["reason"]["type"] in {"popular_in_context", "popular"}
    plain = recs(api, "another-new-user", k=10)
    assert plain["mode"] == "cold_start"
    # The locale's own list (users' locale attributes), when the request gives one.
    lists = api.services.models.get("recommendations").obj.cold_start  # type: ignore[union-attr]
    locale, ranked = next(iter(lists.by_kind[ListKind.LOCALE].items()))
    local = recs(api, "a-third-new-user", k=5, locale=locale)
    assert [i["item_id"] for i in local["items"]] == list(ranked[:5])
    assert local["items"][0]["reason"] == {
        "type": "popular_in_context",
        "locale": locale,
        "text": f"Popular in {locale}",
    }
    assert ranked[:5] != lists.overall[:5] or len(lists.by_kind[ListKind.LOCALE]) == 1
    # A new user with only a session gets session-based items.
    session_user = "session-only-user"
    pool = [i["item_id"] for i in recs(api, "nb-user-0000003", k=3)["items"]]
    send(api, session_user, pool)
    body = recs(api, session_user, k=10)
    assert body["mode"] == "session"
    assert not {i["item_id"] for i in body["items"]} & set(pool)
    assert any(i["reason"]["type"] == "because_you_watched" for i in body["items"])


def test_rank_adapts_text_to_the_skill_level(api: Api) -> None:
    user = "nb-user-0000004"
    stored = api.services.catalog.users.get(api.services.pseudonymizer.user(user))
    skill = stored["attributes"]["skill_level"]  # type: ignore[index]
    variants = {
        "beginner": "simple words",
        "intermediate": "some jargon",
        "expert": "all the jargon",
    }
    known = recs(api, user, k=2)["items"][0]["item_id"]
    items = [
        {"id": known, "variants": variants},
        {
            "id": "fresh-article",
            "category": "vpn",
            "created_at": "2026-11-25T10:00:00Z",
            "variants": {"beginner": "b", "advanced": "a"},
        },
        {"id": "old-article", "category": "nothing-they-like", "created_at": 0},
    ]
    r = api.request("POST", f"/v1/users/{user}/rank", "serve", json={"items": items})
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["skill_level"] == skill
    by_id = {i["id"]: i for i in out["items"]}
    assert by_id[known]["text"] == variants[skill] and by_id[known]["reason"]["type"] == "model"
    assert by_id["old-article"]["text"] is None
    scores = [i["score"] for i in out["items"]]
    assert scores == sorted(scores, reverse=True) and all(0 <= s <= 1 for s in scores)
    over = api.request(
        "POST", f"/v1/users/{user}/rank", "serve", json={"items": items, "skill_level": "expert"}
    ).json()
    fresh = next(i for i in over["items"] if i["id"] == "fresh-article")
    assert (fresh["skill_level"], fresh["text"]) == ("expert", "a")  # "advanced" reads as expert
    # The request's skill_level takes the values PUT /v1/users takes (issue 15, point 15).
    for bad in ("advanced", "wizard", ""):
        r = api.request(
            "POST", f"/v1/users/{user}/rank", "serve", json={"items": items, "skill_level": bad}
        )
        assert r.status_code == 422 and r.json()["error"]["details"][0]["field"] == "skill_level"
    beginner = api.request(
        "POST", f"/v1/users/{user}/rank", "serve", json={"items": items, "skill_level": "beginner"}
    ).json()
    assert next(i for i in beginner["items"] if i["id"] == known)["text"] == "simple words"
    empty = api.request("POST", f"/v1/users/{user}/rank", "serve", json={"items": []})
    assert empty.status_code == 422
    naive = api.request(
        "POST",
        f"/v1/users/{user}/rank",
        "serve",
        json={"items": [{"id": "x", "created_at": "2026-11-25T10:00:00"}]},
    )
    assert naive.status_code == 422 and "time zone" in naive.text


def test_similar_items_and_impressions(api: Api) -> None:
    item = recs(api, "nb-user-0000009", k=1)["items"][0]["item_id"]
    r = api.request("GET", f"/v1/items/{item}/similar", "serve", params={"k": 5})
    assert r.status_code == 200
    got = [i["item_id"] for i in r.json()["items"]]
    assert len(got) == 5 and item not in got
    assert r.json()["items"][0]["reason"]["type"] == "similar_to"
    missing = api.request("GET", "/v1/items/no-such-item/similar", "serve")
    assert missing.status_code == 404
    # Every served list is stored as an impression event with the model version.
    api.services.engine.impressions.flush()  # type: ignore[union-attr]
    assert api.services.store.count_events(event_type="impression") >= 1
    assert api.request("GET", "/v1/users/u/recommendations", "ingest").status_code == 403


def test_realtime_store_down_degrades_not_fails(
    prepared: tuple[Path, dict[str, str]], make_api: Any, tmp_path: Path
) -> None:
    import shutil

    data_dir, keys = prepared
    copy = tmp_path / "data"
    shutil.copytree(data_dir, copy)
    dead = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    api = make_api(Settings(data_dir=copy, redis_url=dead, **keys))
    for _ in range(3):
        r = api.request("GET", "/v1/users/nb-user-0000007/recommendations", "serve")
        assert r.status_code == 200
        assert r.headers["X-Tastebud-Degraded"] == "realtime" and r.json()["degraded"]
        assert r.json()["mode"] == "personalized" and len(r.json()["items"]) == 10
    send(api, "nb-user-0000007", ["nb-item-000001"])  # ingest keeps working too


@pytest.mark.redis
@pytest.mark.slow
def test_cache_is_invalidated_across_processes(
    server_factory: Any, tmp_path: Path, redis_url: str
) -> None:
    keys = _secrets()
    data_dir = tmp_path / "server-data"
    prepare(data_dir, keys, redis_url=redis_url)
    settings = Settings(data_dir=data_dir, redis_url=redis_url, **keys)
    services = build_services(settings)
    serve = services.keys.create("s", "serve")[1]
    ingest_key = services.keys.create("i", "ingest")[1]
    services.close()
    env = {
        "TASTEBUD_REDIS_URL": redis_url,
        "TASTEBUD_PSEUDONYM_KEY": keys["pseudonym_key"],
        "TASTEBUD_FERNET_KEYS": keys["fernet_keys"],
    }
    a, b = server_factory(**env), server_factory(**env)
    user = "nb-user-0000021"
    hdr = {"Authorization": f"Bearer {serve}"}
    url = f"{a.url}/v1/users/{user}/recommendations"
    first = httpx.get(url, headers=hdr).json()
    again = httpx.get(url, headers=hdr)
    assert again.headers["X-Tastebud-Cache"] == "hit"
    top = first["items"][0]["item_id"]
    # The event goes to process B; process A's cached list must not survive it.
    event = {
        "event_type": "page_view",
        "user_id": user,
        "timestamp": time.time(),
        "item_id": top,
        "data": {"url": "/x"},
    }
    r = httpx.post(
        f"{b.url}/v1/events", json=event, headers={"Authorization": f"Bearer {ingest_key}"}
    )
    assert r.status_code == 202
    after = httpx.get(url, headers=hdr)
    assert after.headers["X-Tastebud-Cache"] == "miss"
    assert top not in [i["item_id"] for i in after.json()["items"]]


def test_new_items_get_exploration_slots_in_liked_categories(api: Api) -> None:
    user = "nb-user-0000030"
    pool = [i["item_id"] for i in recs(api, "nb-user-0000031", k=20)["items"]]
    cat = Counter(category_of(api, i) for i in pool).most_common(1)[0][0]
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    for item, category in (("fresh-in-cat", cat), ("fresh-elsewhere", "no-such-taste")):
        r = api.request(
            "PUT",
            f"/v1/items/{item}",
            json={"title": item, "category": category, "created_at": now},
        )
        assert r.status_code in (200, 201), r.text
    api.services.engine.catalog.refresh()
    send(api, user, [i for i in pool if category_of(api, i) == cat][:3])
    body = recs(api, user, k=10)
    got = [i["item_id"] for i in body["items"]]
    assert len(got) == 10 and got[-1] == "fresh-in-cat"  # one slot (10 %), at the end
    want = {
        "type": "new_in_category",
        "category": cat,
        "text": f"New in {cat}, a category you like",
    }
    assert body["items"][-1]["reason"] == want
    assert "fresh-elsewhere" not in got
    # Hidden items never show, exploration or not.
    assert api.request("DELETE", "/v1/items/fresh-in-cat").status_code == 204
    api.services.engine.catalog.refresh()
    assert "fresh-in-cat" not in [i["item_id"] for i in recs(api, user, k=10)["items"]]


# -- issue 15: the first hour of a new user --------------------------------------------------
def test_reasons_name_only_the_list_really_used(api: Api) -> None:
    lists = api.services.models.get("recommendations").obj.cold_start  # type: ignore[union-attr]
    device = next(iter(lists.by_kind[ListKind.DEVICE]))
    known = recs(api, "new-user-a", k=5, device=device)
    assert {i["reason"]["text"] for i in known["items"]} == {f"Popular on {device}"}
    assert [i["item_id"] for i in known["items"]] == list(
        lists.by_kind[ListKind.DEVICE][device][:5]
    )
    overall = recs(api, "new-user-b", k=5)
    for params in (
        {"device": "toaster"},
        {"locale": "xx-NOWHERE"},
        {"device": "<script>alert(1)</script>", "locale": "<b>"},
    ):
        body = recs(api, "new-user-c", k=5, **params)
        assert body["mode"] == "cold_start"
        # The overall list, said so; the caller's text is never copied into an answer.
        assert [i["item_id"] for i in body["items"]] == [i["item_id"] for i in overall["items"]]
        assert {i["reason"]["text"] for i in body["items"]} == {"Popular overall"}
        text = orjson.dumps(body["items"]).decode()
        assert all(str(v) not in text for v in params.values())


def test_feedback_acts_on_rank(api: Api) -> None:
    user = "nb-user-0000013"
    top = [i["item_id"] for i in recs(api, user, k=3)["items"]]
    content = [{"id": i} for i in top]

    def ranked() -> dict[str, Any]:
        r = api.request("POST", f"/v1/users/{user}/rank", "serve", json={"items": content})
        assert r.status_code == 200, r.text
        return r.json()  # type: ignore[no-any-return]

    assert ranked()["items"][0]["id"] == top[0]
    for item, kind in ((top[0], "not_interested"), (top[1], "dislike")):
        r = api.request(
            "POST", f"/v1/users/{user}/feedback", "serve", json={"item_id": item, "kind": kind}
        )
        assert r.status_code == 202
    after = ranked()
    assert [i["id"] for i in after["items"]] == [top[2]]
    assert after["suppressed"] == [top[0], top[1]]
    # A like counts as an interest: content of the liked item's category moves up.
    fresh = [
        {"id": "new-x", "category": "cat-x", "created_at": time.time()},
        {"id": "new-y", "category": "cat-y", "created_at": time.time()},
    ]
    for item, category in (("liked-x", "cat-x"),):
        api.request("PUT", f"/v1/items/{item}", json={"title": item, "category": category})
    api.services.engine.catalog.refresh()
    stranger = "brand-new-liker"

    def body() -> dict:
        return api.request(
            "POST", f"/v1/users/{stranger}/rank", "serve", json={"items": fresh}
        ).json()

    before = body()
    assert before["items"][0]["score"] == before["items"][1]["score"]
    api.request(
        "POST",
        f"/v1/users/{stranger}/feedback",
        "serve",
        json={"item_id": "liked-x", "kind": "like"},
    )
    liked = body()
    assert liked["items"][0]["id"] == "new-x"
    assert liked["items"][0]["score"] > liked["items"][1]["score"]
    assert liked["items"][0]["reason"]["type"] == "interest"


def test_nothing_is_stored_for_an_erased_user_until_they_return(api: Api) -> None:
    user = "nb-user-0000015"
    key = api.services.pseudonymizer.user(user)
    assert api.request("DELETE", f"/v1/users/{user}").status_code == 200
    assert api.services.store.count_events(user_key=key) == 0
    for _ in range(2):  # requests about the user: lists are served, no impression is stored
        assert recs(api, user, k=5)["mode"] == "cold_start"
    api.services.engine.impressions.flush()  # type: ignore[union-attr]
    assert api.services.store.count_events(user_key=key) == 0
    # The user comes back with events of their own: from then on, impressions are stored.
    send(api, user, ["nb-item-000002"])
    recs(api, user, k=5)
    api.services.engine.impressions.flush()  # type: ignore[union-attr]
    assert api.services.store.count_events(user_key=key, event_type="impression") == 1


def test_feedback_retried_with_its_id_is_stored_once(api: Api) -> None:
    user = "nb-user-0000016"
    body = {"item_id": "nb-item-000005", "kind": "like", "event_id": "fb-retry-1"}
    for _ in range(2):  # the answer was lost; the client sends the same request again
        r = api.request("POST", f"/v1/users/{user}/feedback", "serve", json=body)
        assert r.status_code == 202 and r.json()["status"] == "recorded"
    key = api.services.pseudonymizer.user(user)
    assert api.services.store.count_events(user_key=key, event_type="feedback") == 1


# -- issue 16, point 5: every answer has a schema, and the answers keep their shape ---------------
def conforms(model: type[BaseModel], body: Any) -> None:
    """``body`` is valid for ``model`` and holds nothing the model does not declare (a round
    trip through the model gives the same JSON)."""
    parsed = model.model_validate(body)
    assert parsed.model_dump(mode="json", exclude_unset=True) == body


def test_personalization_answers_match_their_response_models(api: Api) -> None:
    from tastebud.api.routes.profiles import ProfileOut
    from tastebud.api.routes.recommendations import (
        FeedbackOut,
        RankingOut,
        RecommendationsOut,
        SimilarOut,
    )

    user = "nb-user-0000011"
    send(api, "cold-session-user", ["nb-item-000003"])
    bodies: dict[str, tuple[type[BaseModel], Any]] = {}
    for who, params in (
        (user, {"k": 10}),
        ("brand-new-user", {"k": 5, "device": "mobile", "hour": 22}),
        ("cold-session-user", {"k": 5}),
    ):
        body = recs(api, who, **params)
        del body["_headers"]
        conforms(RecommendationsOut, body)
        bodies[f"recommendations {body['mode']}"] = (RecommendationsOut, body)
    assert {b["mode"] for _, b in bodies.values()} == {"personalized", "cold_start", "session"}
    item = bodies["recommendations personalized"][1]["items"][0]["item_id"]
    similar = api.request("GET", f"/v1/items/{item}/similar", "serve", params={"k": 3})
    ranked = api.request(
        "POST",
        f"/v1/users/{user}/rank",
        "serve",
        json={"items": [{"id": item}, {"id": "new-thing", "category": "vpn", "created_at": 0}]},
    )
    feedback = api.request(
        "POST", f"/v1/users/{user}/feedback", "serve", json={"item_id": item, "kind": "like"}
    )
    profile = api.request("GET", f"/v1/users/{user}/profile", "serve")
    for model, r in (
        (SimilarOut, similar),
        (RankingOut, ranked),
        (FeedbackOut, feedback),
        (ProfileOut, profile),
    ):
        assert r.status_code in (200, 202), r.text
        conforms(model, r.json())
    # Each of these routes documents its answer in /openapi.json.
    paths = api.client.get("/openapi.json").json()["paths"]
    for path, method, status, schema in (
        ("/v1/users/{user_id}/recommendations", "get", "200", "RecommendationsOut"),
        ("/v1/items/{item_id}/similar", "get", "200", "SimilarOut"),
        ("/v1/users/{user_id}/rank", "post", "200", "RankingOut"),
        ("/v1/users/{user_id}/feedback", "post", "202", "FeedbackOut"),
        ("/v1/users/{user_id}/profile", "get", "200", "ProfileOut"),
    ):
        content = paths[path][method]["responses"][status]["content"]["application/json"]
        assert content["schema"] == {"$ref": f"#/components/schemas/{schema}"}
