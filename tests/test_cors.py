"""CORS for the ingest routes (issue 15, point 2): web pages from the configured origins may send
events; nothing else answers CORS; the seed's unchanged ``trackEvent`` works from a real browser."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from tastebud.config import Settings

from conftest import SHARED_DATA, Api, Server, free_port, need_shared

PAGES = Path(__file__).parent / "pages"
SEED_SNIPPET = (PAGES / "seed_track_event.js").read_text()
ALLOWED = "http://127.0.0.1:9911"


@pytest.fixture
def cors_api(make_api: Callable[[Settings], Api], make_settings: Callable[..., Settings]) -> Api:
    return make_api(make_settings(cors_origins=[ALLOWED]))


def _preflight(api: Api, path: str, origin: str = ALLOWED, method: str = "POST") -> httpx.Response:
    return api.client.options(
        path,
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )


def test_no_cors_by_default(sqlite_api: Api) -> None:
    r = _preflight(sqlite_api, "/v1/events")
    assert r.status_code == 405 and "access-control-allow-origin" not in r.headers
    r = sqlite_api.request("POST", "/v1/events", "ingest", json={}, headers={"Origin": ALLOWED})
    assert "access-control-allow-origin" not in r.headers


@pytest.mark.parametrize(
    ("path", "method"),
    [
        ("/v1/events", "POST"),
        ("/v1/events/batch", "POST"),
        ("/api/events", "POST"),
        ("/v1/users/u-1/consent", "PUT"),
    ],
)
def test_preflight_of_every_ingest_route(cors_api: Api, path: str, method: str) -> None:
    r = _preflight(cors_api, path, method=method)
    assert r.status_code == 200
    assert r.headers["access-control-allow-origin"] == ALLOWED
    assert method in r.headers["access-control-allow-methods"]
    assert "authorization" in r.headers["access-control-allow-headers"].lower()
    assert int(r.headers["access-control-max-age"]) == 600  # the preflight is cached
    assert "access-control-allow-credentials" not in r.headers  # never credentials
    assert "Origin" in r.headers["vary"]


def test_answers_carry_the_origin_errors_included(cors_api: Api) -> None:
    ok = cors_api.request(
        "POST",
        "/v1/events",
        "ingest",
        headers={"Origin": ALLOWED},
        json={"event_type": "page_view", "user_id": "u-1", "timestamp": "2026-11-20T10:00:00Z"},
    )
    bad = cors_api.request("POST", "/v1/events", "ingest", headers={"Origin": ALLOWED}, json={})
    nokey = cors_api.client.post("/v1/events", headers={"Origin": ALLOWED}, json={})
    for r, status in ((ok, 202), (bad, 422), (nokey, 401)):
        assert r.status_code == status
        assert r.headers["access-control-allow-origin"] == ALLOWED
        assert "Retry-After" in r.headers["access-control-expose-headers"]
        assert "access-control-allow-credentials" not in r.headers


def test_other_origins_and_other_routes_get_no_cors(cors_api: Api) -> None:
    evil = _preflight(cors_api, "/v1/events", origin="http://127.0.0.1:6666")
    assert evil.status_code == 400 and "access-control-allow-origin" not in evil.headers
    # A page may send events, never read recommendations, profiles or the registry.
    for path in ("/v1/users/u-1/recommendations", "/v1/users/u-1/profile", "/v1/models"):
        r = _preflight(cors_api, path, method="GET")
        assert "access-control-allow-origin" not in r.headers, path
        r = cors_api.request("GET", path, "serve", headers={"Origin": ALLOWED})
        assert "access-control-allow-origin" not in r.headers, path


def test_keyless_ingest_needs_the_setting_and_an_allowed_origin(
    make_api: Callable[[Settings], Api], make_settings: Callable[..., Settings]
) -> None:
    api = make_api(make_settings(cors_origins=[ALLOWED], cors_keyless=True))
    ev = {"eventType": "page_view", "userId": "u-1", "timestamp": "2026-11-20T10:00:00Z"}
    assert api.client.post("/api/events", json=ev, headers={"Origin": ALLOWED}).status_code == 202
    other = api.client.post("/api/events", json=ev, headers={"Origin": "http://127.0.0.1:1"})
    assert other.status_code == 401
    assert api.client.post("/api/events", json=ev).status_code == 401  # no Origin: no key
    # Keyless stands in for an ingest key only: nothing to read.
    r = api.client.get("/v1/users/u-1/consent", headers={"Origin": ALLOWED})
    assert r.status_code == 401


def test_origins_setting_refuses_what_is_not_an_origin(
    make_settings: Callable[..., Settings],
) -> None:
    for bad in ("*", "https://shop.example/path", "shop.example", "ftp://x.example"):
        with pytest.raises(ValueError, match="origin"):
            make_settings(cors_origins=[bad])
    assert make_settings(cors_origins="HTTPS://Shop.Example/, http://a:81").cors_origins == [
        "https://shop.example",
        "http://a:81",
    ]


def test_snippet_is_the_seed_documents(tmp_path: Path) -> None:
    seed = need_shared(SHARED_DATA.parent / "SEED.md")
    block = re.search(
        r"```javascript\n(// Example: Tracking user interaction\n.*?)```", seed.read_text(), re.S
    )
    assert block is not None and block.group(1) == SEED_SNIPPET


# -- a real browser ---------------------------------------------------------------------------
def _page(api_url: str, user: str) -> bytes:
    """A page that loads the seed's snippet unchanged; ``<base>`` sends its relative
    ``/api/events`` to the API on another port."""
    return f"""<!doctype html><html><head><meta charset="utf-8">
<base href="{api_url}/"><title>loading</title></head><body>
<script>
function getCurrentUserId() {{ return {user!r}; }}
function getSessionId() {{ return "s-browser"; }}
{SEED_SNIPPET}
trackEvent("page_view", {{url: "/pricing", title: "Pricing"}})
  .then(() => {{ document.title = "sent"; }})
  .catch((e) => {{ document.title = "failed: " + e.name; }});
</script></body></html>""".encode()


class _PageServer:
    """A static page served on 127.0.0.1 (another origin than the API)."""

    def __init__(self, body: bytes, port: int | None = None) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.port = port or free_port()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.port}/"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _events(server: Server, key: str, user: str) -> list[dict[str, Any]]:
    r = httpx.get(
        f"{server.url}/v1/users/{user}/export",
        timeout=10,
        headers={"Authorization": f"Bearer {key}"},
    )
    assert r.status_code == 200, r.text
    events: list[dict[str, Any]] = r.json().get("events", [])
    return events


def _load(browser: Any, url: str) -> str:
    tab = browser.new_page()
    tab.goto(url)
    tab.wait_for_function("document.title !== 'loading'", timeout=15000)
    title: str = tab.title()
    tab.close()
    return title


@pytest.mark.browser
@pytest.mark.slow
def test_the_seed_trackevent_sends_from_a_page_on_another_port(
    server_factory: Callable[..., Server], browser: Any
) -> None:
    allowed_port = free_port()
    server = server_factory(
        TASTEBUD_CORS_ORIGINS=f"http://127.0.0.1:{allowed_port}", TASTEBUD_CORS_KEYLESS="true"
    )
    from tastebud.services import build_services

    services = build_services(
        Settings(
            data_dir=Path(server.env["TASTEBUD_DATA_DIR"]),
            pseudonym_key=server.env["TASTEBUD_PSEUDONYM_KEY"],
            fernet_keys=server.env["TASTEBUD_FERNET_KEYS"],
        )
    )
    admin = services.keys.create("cors-test", "admin")[1]
    services.close()

    allowed = _PageServer(_page(server.url, "u-browser"), allowed_port)
    stranger = _PageServer(_page(server.url, "u-stranger"))  # an origin that is not allowed
    try:
        assert _load(browser, allowed.url) == "sent"
        events = _events(server, admin, "u-browser")
        assert len(events) == 1
        assert events[0]["event_type"] == "page_view"
        assert events[0]["session_id"] == "s-browser"
        assert _load(browser, stranger.url) == "failed: TypeError"  # refused by the browser
        assert _events(server, admin, "u-stranger") == []
    finally:
        allowed.close()
        stranger.close()
