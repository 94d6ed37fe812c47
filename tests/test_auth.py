"""Keys and scopes, table-driven over the app's own routes so that no route can skip auth."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tastebud.api.app import route_table

from conftest import Api

PUBLIC = {
    "/",
    "/healthz",
    "/readyz",
    "/metrics",
    "/docs",
    "/openapi.json",
    "/docs/oauth2-redirect",
    "/redoc",
    "/static-offline-docs",
}
API_DOC = Path(__file__).resolve().parents[1] / "docs" / "api.md"


def routes(api: Api) -> list[tuple[str, str, str | None]]:
    table = [(r.method, r.path, r.scope) for r in route_table(api.client.app)]  # type: ignore[arg-type]
    assert len(table) >= 15  # the walk found the included routers
    return table


def concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "x1", path)


def test_every_non_public_route_declares_a_scope(sqlite_api: Api) -> None:
    for method, path, scope in routes(sqlite_api):
        if path in PUBLIC:
            assert scope is None, path
        else:
            assert scope in {"ingest", "serve", "admin"}, f"{method} {path} declares no scope"


def test_scope_matrix(sqlite_api: Api) -> None:
    """No key: 401. Malformed or unknown key: 401. Scope too weak: 403. Allowed: neither."""
    api = sqlite_api
    checked = 0
    for method, path, need in routes(api):
        if need is None:
            continue
        url = concrete(path)
        kw: dict[str, Any] = {"json": {}} if method in {"POST", "PUT"} else {}
        r = api.client.request(method, url, **kw)
        assert r.status_code == 401, (method, path)
        assert r.json()["error"]["code"] == "unauthenticated"
        assert r.headers["www-authenticate"] == "Bearer"
        for bogus in (
            "nonsense",
            "tb_admin_000000000000_" + "a" * 43,
            api.keys["admin"][:-1] + ("A" if api.keys["admin"][-1] != "A" else "B"),
        ):
            r = api.client.request(method, url, headers={"Authorization": f"Bearer {bogus}"}, **kw)
            assert r.status_code == 401, (method, path, bogus[:12])
        r = api.client.request(
            method, url, headers={"Authorization": f"Basic {api.keys['admin']}"}, **kw
        )
        assert r.status_code == 401
        for have in ("ingest", "serve", "admin"):
            r = api.request(method, url, have, **kw)
            allowed = have == "admin" or have == need
            if allowed:
                assert r.status_code not in (401, 403), (method, path, have, r.text)
            else:
                assert r.status_code == 403, (method, path, have)
                assert r.json()["error"]["code"] == "forbidden"
            checked += 1
    assert checked >= 3 * 10


def test_revoked_key_stops_working_at_once(sqlite_api: Api) -> None:
    api = sqlite_api
    info, key = api.services.keys.create("temp", "serve")
    h = {"Authorization": f"Bearer {key}"}
    assert api.client.get("/v1/items/zz", headers=h).status_code == 404
    api.services.keys.revoke(info.key_id)
    assert api.client.get("/v1/items/zz", headers=h).status_code == 401


def test_key_with_mismatched_scope_prefix_is_refused(sqlite_api: Api) -> None:
    key = sqlite_api.keys["ingest"]
    forged = key.replace("tb_ingest_", "tb_admin_", 1)
    r = sqlite_api.client.put("/v1/items/x", json={}, headers={"Authorization": f"Bearer {forged}"})
    assert r.status_code == 401


def test_keys_are_stored_hashed(sqlite_api: Api) -> None:
    raw = Path(str(sqlite_api.services.store.engine.url.database)).read_bytes()
    for key in sqlite_api.keys.values():
        assert key.split("_", 3)[3].encode() not in raw


def test_api_doc_lists_every_route_with_its_scope(sqlite_api: Api) -> None:
    text = API_DOC.read_text()
    table = set(re.findall(r"^\| `(GET|POST|PUT|DELETE) ([^`]+)` \| (\w+) \|", text, re.M))
    expected = {
        (m, p, s or "none")
        for m, p, s in routes(sqlite_api)
        if p not in {"/docs/oauth2-redirect", "/redoc", "/static-offline-docs"}
    }
    assert table == expected


@pytest.mark.parametrize("scope", ["ingest", "serve", "admin"])
def test_key_manager_round_trip(sqlite_api: Api, scope: str) -> None:
    info, key = sqlite_api.services.keys.create("n", scope)
    principal = sqlite_api.services.keys.authenticate(key)
    assert (principal.key_id, principal.scope) == (info.key_id, scope)


def test_forbidden_names_the_scope_once(sqlite_api: Api) -> None:
    # Issue 15, point 15: "scope 'admin' (or 'admin')" said the same scope twice.
    r = sqlite_api.request("GET", "/v1/privacy/report", "serve")
    assert r.json()["error"]["message"] == "this route needs a key with scope 'admin'"
    r = sqlite_api.request("GET", "/v1/models", "ingest")
    assert r.json()["error"]["message"] == "this route needs a key with scope 'serve' (or 'admin')"


def test_the_root_leads_to_the_docs(sqlite_api: Api) -> None:
    r = sqlite_api.client.get("/", follow_redirects=False)
    assert r.status_code == 307 and r.headers["location"] == "/docs"
    assert sqlite_api.client.get("/").status_code == 200  # the docs page itself
