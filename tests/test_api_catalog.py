"""Items and users over HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

from conftest import Api


def test_item_put_get_delete(api: Api) -> None:
    body = {
        "title": "Router guide",
        "categories": ["networking", "howto"],
        "type": "article",
        "created_at": "2026-11-01T00:00:00Z",
        "attributes": {"level": 2},
    }
    r = api.request("PUT", "/v1/items/art-1", json=body)
    assert r.status_code == 201 and r.json() == {"item_id": "art-1", "created": True}
    r = api.request("PUT", "/v1/items/art-1", json={**body, "hidden": True})
    assert r.status_code == 200 and r.json()["created"] is False
    got = api.request("GET", "/v1/items/art-1", "serve").json()
    assert got["category"] == "networking" and got["categories"] == ["networking", "howto"]
    assert got["created_at"].startswith("2026-11-01T00:00:00")
    assert got["hidden"] is True and got["attributes"] == {"level": 2} and got["type"] == "article"
    assert api.request("DELETE", "/v1/items/art-1").status_code == 204
    r = api.request("GET", "/v1/items/art-1", "serve")
    assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_item"
    assert api.request("DELETE", "/v1/items/art-1").status_code == 404


def test_item_validation(api: Api) -> None:
    r = api.request("PUT", "/v1/items/x", json={"title": 5})
    assert r.status_code == 422
    assert r.json()["error"]["details"][0]["field"] == "title"
    r = api.request("PUT", "/v1/items/x", json={"created_at": "2026-01-01"})
    assert r.status_code == 422
    r = api.request("PUT", "/v1/items/x", json={"colour": "red"})
    assert r.status_code == 422 and "colour" in r.json()["error"]["message"]


def test_items_batch_keeps_good_items(api: Api) -> None:
    body = {
        "items": [
            {"item_id": "a", "category": "news"},
            {"item_id": "b", "categories": "not-a-list"},
            {"title": "no id"},
            {"item_id": "c", "title": "C"},
        ]
    }
    out = api.request("POST", "/v1/items/batch", json=body).json()
    assert (out["created"], out["updated"], out["rejected"]) == (2, 0, 2)
    assert [r["status"] for r in out["results"]] == ["created", "rejected", "rejected", "created"]
    assert "categories" in out["results"][1]["reason"]
    assert "item_id" in out["results"][2]["reason"]
    out = api.request("POST", "/v1/items/batch", json={"items": [{"item_id": "a"}]}).json()
    assert out["updated"] == 1
    assert api.services.catalog.items.count() == 2
    r = api.request(
        "POST", "/v1/items/batch", json={"items": [{"item_id": str(i)} for i in range(1001)]}
    )
    assert r.status_code == 413


def test_user_attributes(api: Api) -> None:
    body = {
        "segment": "pro",
        "skill_level": "expert",
        "interests": ["security"],
        "age_bucket": "25-34",
        "occupation": "engineer",
        "plan": "annual",
    }
    r = api.request("PUT", "/v1/users/u-1", json=body)
    assert r.status_code == 201
    got = api.request("GET", "/v1/users/u-1", "serve").json()
    assert got["user_id"] == "u-1"
    assert got["attributes"]["plan"] == "annual" and got["attributes"]["skill_level"] == "expert"
    r = api.request("PUT", "/v1/users/u-1", json={"segment": "free"})
    assert r.status_code == 200
    assert api.request("GET", "/v1/users/u-1", "serve").json()["attributes"]["segment"] == "free"
    r = api.request("GET", "/v1/users/nobody", "serve")
    assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_user"
    r = api.request("PUT", "/v1/users/u-1", json={"skill_level": "wizard"})
    assert r.status_code == 422 and r.json()["error"]["details"][0]["field"] == "skill_level"


def test_bad_path_ids(api: Api) -> None:
    r = api.request("GET", "/v1/users/" + "x" * 129, "serve")
    assert r.status_code == 422
    r = api.request("GET", "/v1/items/a%0Ab", "serve")
    assert r.status_code == 422


def test_health_and_readiness(api: Api) -> None:
    assert api.client.get("/healthz").json() == {"status": "ok", "checks": {}}
    ready = api.client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"database": "ok", "schema": "ok"}


def test_readiness_fails_when_the_schema_is_behind(sqlite_api: Api) -> None:
    from sqlalchemy import text

    with sqlite_api.services.store.engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '0000'"))
    r = sqlite_api.client.get("/readyz")
    assert r.status_code == 503
    assert r.json()["checks"]["schema"].startswith("at 0000")


def test_openapi_and_docs_are_public(sqlite_api: Api) -> None:
    spec = sqlite_api.client.get("/openapi.json").json()
    assert "/v1/events/batch" in spec["paths"]
    schemas = spec["components"]["schemas"]
    assert "Event" in schemas and "SearchEvent" in schemas and "ItemBatchEntry" in schemas
    page = sqlite_api.client.get("/docs")
    assert page.status_code == 200
    # Swagger UI comes from the package, not a CDN (the service runs on closed networks too).
    assert "cdn" not in page.text.lower()
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css"):
        assert f"/static-offline-docs/{asset}" in page.text
        assert sqlite_api.client.get(f"/static-offline-docs/{asset}").status_code == 200
