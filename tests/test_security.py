"""The security suite (issue 9, item 7): rate limits per key (429 with ``Retry-After``), body limits
on every route (with and without ``Content-Length``), and SQL-injection and path-traversal
payloads in every path, query and body string of every route, answered without a 5xx, a leaked
file or SQL error, or any effect on stored data. Routes come from the app's own route table and
OpenAPI document, so a new route is covered without editing this file.

Rate limits are tested on a fake clock (``FakeClock``), or, for Redis, whose clock is the
server's, by moving the bucket's state; the limiter's cost per call is measured by
``bench/micro.py``, not asserted here. The log audit over the whole suite is ``log_audit.py``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import socket
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from sqlalchemy import Engine, func, inspect, select

from tastebud.api.app import route_table
from tastebud.api.ratelimit import MemoryRateLimiter, RedisRateLimiter
from tastebud.config import RateLimits, Settings
from tastebud.store.tables import items, metadata
from test_serving import _secrets, prepare

from conftest import Api, event

BENCHMARKS_DOC = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"


def body_routes(api: Api) -> list[tuple[str, str]]:
    return [(r.method, r.path) for r in route_table(api.client.app) if r.method in {"POST", "PUT"}]  # type: ignore[arg-type]


def concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "x1", path)


# --- rate limits ---------------------------------------------------------------------------

SMALL = {"ingest_per_s": 1.0, "serve_per_s": 1.0, "admin_per_s": 1.0, "burst_s": 3.0}
"""Three requests at once, then one a second."""
SLOW = {"ingest_per_s": 0.1, "serve_per_s": 0.1, "admin_per_s": 0.1, "burst_s": 30.0}
"""Three requests at once, then one every 10 s: for Redis, whose clock (the server's) is real,
so that a stalled test machine cannot refill a bucket between two requests."""


class FakeClock:
    """Monotonic seconds that move only when a test says so (``MemoryRateLimiter(clock=)``)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def hammer(api: Api, key: str, n: int) -> list[Any]:
    headers = {"Authorization": f"Bearer {key}"}
    return [api.client.get("/v1/items/nope", headers=headers) for _ in range(n)]


def assert_limited(response: Any, retry_after: int | None = None) -> None:
    assert response.status_code == 429, response.text
    assert response.json()["error"]["code"] == "rate_limited"
    assert set(response.json()["error"]) == {"code", "message", "details"}
    value = response.headers["retry-after"]
    assert value.isdigit() and int(value) >= 1
    if retry_after is not None:
        assert int(value) == retry_after


def test_a_key_over_its_limit_gets_429_others_do_not(
    make_api: Callable[[Settings], Api], make_settings: Callable[..., Settings]
) -> None:
    api = make_api(make_settings(rate_limits=SMALL))
    app: Any = api.client.app
    # The app's own limiter, built from the settings: a burst of three, then 429.
    assert isinstance(app.state.rate_limiter, MemoryRateLimiter)
    assert [r.status_code for r in hammer(api, api.keys["serve"], 4)] == [404, 404, 404, 429]
    # The same limits on a clock the test moves (the auth dependency reads app.state).
    clock = FakeClock()
    app.state.rate_limiter = MemoryRateLimiter(RateLimits(**SMALL), clock=clock)
    statuses = [r.status_code for r in hammer(api, api.keys["serve"], 3)]
    assert statuses == [404, 404, 404]  # the burst (404: no such item, but allowed)
    assert_limited(hammer(api, api.keys["serve"], 1)[0], retry_after=1)
    # Another key (even one of the same scope) has its own bucket.
    _, other = api.services.keys.create("other-serve", "serve")
    assert hammer(api, other, 1)[0].status_code == 404
    assert api.request("POST", "/v1/events", "ingest", json=event()).status_code == 202
    # Requests without a key are not counted against anyone (they fail auth).
    for _ in range(5):
        assert api.client.get("/v1/items/nope").status_code == 401
    clock.now += 0.9  # not yet a whole interval: still limited, retry in (0.1 s rounded up) 1 s
    assert_limited(hammer(api, api.keys["serve"], 1)[0], retry_after=1)
    clock.now += 0.1  # one interval later the key may send one request again
    assert hammer(api, api.keys["serve"], 1)[0].status_code == 404
    assert_limited(hammer(api, api.keys["serve"], 1)[0])
    clock.now += 3.0  # a full bucket again (never more than the burst)
    assert [r.status_code for r in hammer(api, api.keys["serve"], 4)] == [404, 404, 404, 429]


def test_rate_limits_can_be_disabled(
    make_api: Callable[[Settings], Api], make_settings: Callable[..., Settings]
) -> None:
    api = make_api(make_settings(rate_limits={**SMALL, "enabled": False}))
    app: Any = api.client.app
    assert app.state.rate_limiter is None
    assert {r.status_code for r in hammer(api, api.keys["serve"], 20)} == {404}


def test_token_bucket_is_exact() -> None:
    clock = FakeClock()
    limiter = MemoryRateLimiter(
        RateLimits(ingest_per_s=10.0, serve_per_s=100.0, burst_s=2.0), clock=clock
    )
    assert sum(limiter.acquire("k", "ingest") == 0.0 for _ in range(50)) == 20  # 10/s x 2 s
    assert limiter.acquire("k", "ingest") == pytest.approx(0.1)
    clock.now += 0.35
    assert sum(limiter.acquire("k", "ingest") == 0.0 for _ in range(10)) == 3
    assert sum(limiter.acquire("s", "serve") == 0.0 for _ in range(500)) == 200


def test_default_limits_sit_above_the_benchmark_rates() -> None:
    """Every figure the ingest and serving benchmarks recorded in docs/benchmarks.md (one key
    each) stays under the default limit of its key's scope."""
    limits = RateLimits()
    figures: dict[str, list[float]] = {"ingest": [], "serve": []}
    for line in BENCHMARKS_DOC.read_text().splitlines():
        if not line.startswith("{"):
            continue
        doc = json.loads(line)
        if "single_rps" in doc:
            figures["ingest"].append(doc["single_rps"])
        if "http_events_per_s" in doc:
            figures["ingest"].append(doc["http_events_per_s"] / 500)  # batches of 500
        for name in ("max_sustained_rps", "throughput_rps"):
            if name in doc:
                figures["serve"].append(doc[name])
    assert figures["ingest"], "no ingest benchmark figures found in docs/benchmarks.md"
    assert max(figures["ingest"]) < limits.ingest_per_s / 2
    # Serving: the issue-8 figure (about 1,500 requests/s on 2 cores) if not yet recorded.
    assert max(figures["serve"], default=1500.0) < limits.serve_per_s / 2
    assert limits.burst_s >= 1.0


@pytest.mark.redis
def test_redis_bucket_is_shared_by_two_api_processes(
    make_api: Callable[[Settings], Api], make_settings: Callable[..., Settings], redis_url: str
) -> None:
    import redis

    settings = make_settings(redis_url=redis_url, rate_limits=SLOW)
    first, second = make_api(settings), make_api(settings)  # one database, one Redis
    key = first.keys["serve"]
    assert [r.status_code for r in hammer(first, key, 3)] == [404, 404, 404]
    assert_limited(hammer(second, key, 1)[0], retry_after=10)  # the second app sees the first's
    bucket = f"tb:rl:{key.split('_')[2]}"
    client = redis.Redis.from_url(redis_url)
    ttl = client.pttl(bucket)
    client.script_flush()  # as after a Redis restart: the limiter loads its script again
    assert 0 < ttl <= 31_000  # expires once full again (30 s) plus 1 s: nothing stays behind
    assert hammer(second, second.keys["serve"], 1)[0].status_code == 404
    assert client.exists(f"tb:rl:{second.keys['serve'].split('_')[2]}")  # counted in Redis
    # One interval (10 s) later, on the clock of the bucket (Redis's own): the bucket's
    # theoretical arrival time, in ms, moved back by one interval instead of waiting for it.
    tat = float(client.get(bucket) or 0)
    client.set(bucket, f"{tat - 10_000:.3f}", keepttl=True)
    client.close()
    assert hammer(second, key, 1)[0].status_code == 404
    assert_limited(hammer(first, key, 1)[0])


@pytest.mark.redis
def test_leased_tokens_never_exceed_the_shared_bucket(redis_url: str) -> None:
    """Two processes taking leases of 10 tokens from one bucket of 200: together they admit
    what the bucket holds (plus its refill), and refuse early by at most one lease each."""
    limits = RateLimits(serve_per_s=100.0, burst_s=2.0)
    first, second = (RedisRateLimiter(redis_url, limits, lease_s=0.1) for _ in range(2))
    started = time.monotonic()
    admitted = sum((first, second)[i % 2].acquire("k", "serve") == 0.0 for i in range(400))
    # Not a timing target: the bound grows with the time taken (the bucket's refill).
    elapsed = time.monotonic() - started
    assert 200 - 2 * 10 <= admitted <= 200 + 100 * elapsed + 1
    first.close()
    second.close()


class RefusingServer:
    """A TCP port that accepts connections and closes them at once (a broken Redis), counting
    the connections made to it."""

    def __init__(self) -> None:
        self._socket = socket.create_server(("127.0.0.1", 0))
        self._socket.settimeout(0.05)
        self.port = self._socket.getsockname()[1]
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._socket.accept()
            except TimeoutError:
                continue
            self.connections += 1
            conn.close()

    def __enter__(self) -> RefusingServer:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self._socket.close()


def test_redis_down_fails_open_and_logs_the_error_type_only(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Allowed although Redis fails; then a per-process bucket of the same size stands in,
    without asking Redis again for ``retry_s``. (How long the failing call takes is measured
    by ``bench/micro.py``.)"""
    caplog.set_level(logging.WARNING)
    with RefusingServer() as broken:
        url = f"redis://:hunter2-not-logged@127.0.0.1:{broken.port}/0"
        limiter = RedisRateLimiter(
            url, RateLimits(serve_per_s=5.0, burst_s=0.6), timeout_s=0.2, retry_s=600.0
        )
        assert limiter.acquire("k", "serve") == 0.0
        tried = broken.connections
        assert tried >= 1  # it did ask Redis
        assert [limiter.acquire("k", "serve") for _ in range(2)] == [0.0, 0.0]
        assert limiter.acquire("k", "serve") > 0.0  # the local bucket of 3 is empty
        assert broken.connections == tried  # ... and Redis was not asked again
        limiter.close()
    warnings = [r for r in caplog.records if "rate limiter" in r.getMessage()]
    assert len(warnings) == 1
    assert "ConnectionError" in caplog.text and "hunter2" not in caplog.text


# --- body limits -----------------------------------------------------------------------------


def test_every_body_route_refuses_an_oversized_body(
    make_api: Callable[[Settings], Api], make_settings: Callable[..., Settings]
) -> None:
    """413 ``payload_too_large`` for every POST/PUT route, whether the client declares the size
    (``Content-Length``) or streams a chunked body that only turns out too large."""
    api = make_api(make_settings(max_body_bytes=1024, max_batch_bytes=4096))
    oversized = b'{"x": "' + b"a" * 10_000 + b'"}'
    routes = body_routes(api)
    assert len(routes) >= 10
    for method, path in routes:
        url = concrete(path)
        declared = api.request(
            method, url, content=oversized, headers={"Content-Type": "application/json"}
        )
        assert declared.status_code == 413, (method, path, declared.text)
        assert declared.json()["error"]["code"] == "payload_too_large"

        def chunks() -> Iterator[bytes]:
            for i in range(0, len(oversized), 1000):
                yield oversized[i : i + 1000]

        streamed = api.request(
            method, url, content=chunks(), headers={"Content-Type": "application/json"}
        )
        assert streamed.status_code == 413, (method, path, "chunked", streamed.text)
        assert streamed.json()["error"]["code"] == "payload_too_large"
    # Below the limit, the same routes answer as usual (not 413).
    r = api.request("POST", "/v1/events", "ingest", json=event())
    assert r.status_code == 202


# --- injection and traversal -----------------------------------------------------------------

PAYLOADS = [
    "' OR '1'='1",
    "1; DROP TABLE events; --",
    "x'); DROP TABLE items; --",
    '" OR ""="',
    "1 UNION SELECT key_hash FROM api_keys --",
    "../../etc/passwd",
    "..%2F..%2Fetc%2Fpasswd",
    "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "....//....//etc/passwd",
    "/etc/passwd",
    "%00",
    "\x00",
    "x" * 5000,
]
BODY_PAYLOADS = [PAYLOADS[0], PAYLOADS[1], PAYLOADS[5], "%00", "\x00", "x" * 5000]
LEAK_MARKERS = [
    "root:",  # /etc/passwd
    "Traceback",
    "sqlite3",
    "psycopg",
    "sqlalchemy",
    "OperationalError",
    "ProgrammingError",
    "syntax error",
    "SQLSTATE",
    "unrecognized token",
]
SEED_USER = "nb-user-0000004"


def _examples(item: str) -> dict[str, Callable[[], Any]]:
    """A valid body per route (fresh event ids), so that injected strings reach the store."""

    def ev() -> dict[str, Any]:
        return event(
            "content_engagement",
            user="sec-user-2",
            session_id="s-1",
            data={"item_id": item, "time_spent_ms": 1000, "scroll_depth": 0.5},
            context={"device_type": "mobile", "locale": "en-GB"},
        )

    return {
        "POST /v1/events": ev,
        "POST /v1/events/batch": lambda: {"events": [ev()]},
        "POST /api/events": lambda: {
            "timestamp": "2026-11-20T10:00:00Z",
            "userId": "sec-user-2",
            "sessionId": "s-1",
            "eventType": "page_view",
            "data": {"url": "/pricing", "title": "Pricing"},
        },
        "PUT /v1/items/{item_id}": lambda: {
            "title": "A title",
            "category": "books",
            "categories": ["books"],
            "type": "article",
            "attributes": {"author": "someone"},
        },
        "POST /v1/items/batch": lambda: {
            "items": [{"item_id": "sec-item-2", "title": "t", "category": "books"}]
        },
        "PUT /v1/users/{user_id}": lambda: {
            "segment": "pro",
            "locale": "en-GB",
            "interests": ["books"],
            "favourite": "tea",
        },
        "PUT /v1/users/{user_id}/consent": lambda: {"analytics": True},
        "POST /v1/users/{user_id}/aliases": lambda: {"anonymous_id": "sec-anon-1"},
        "POST /v1/users/{user_id}/rank": lambda: {
            "items": [{"id": item, "category": "vpn", "variants": {"beginner": "b"}}],
            "skill_level": "beginner",
        },
        "POST /v1/users/{user_id}/feedback": lambda: {
            "item_id": item,
            "kind": "like",
            "list_id": "home",
        },
        "POST /v1/models/{name}/versions/{version}/promote": lambda: {
            "alias": "staging",
            "reason": "security test",
        },
        "POST /v1/models/{name}/versions/{version}/approve": lambda: {"reason": "security test"},
        "POST /v1/models/{name}/versions/{version}/archive": lambda: {"reason": "security test"},
        "POST /v1/models/{name}/rollback": lambda: {"reason": "security test"},
    }


def _leaves(doc: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield from _leaves(v, (*path, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            yield from _leaves(v, (*path, i))
    elif isinstance(doc, str):
        yield path


def _replace(doc: Any, path: tuple[Any, ...], value: str) -> Any:
    if not path:
        return value
    doc[path[0]] = _replace(doc[path[0]], path[1:], value)
    return doc


def _string_schemas(schema: dict[str, Any]) -> list[dict[str, Any]]:
    options = schema.get("anyOf", [schema])
    return [s for s in options if s.get("type") == "string"]


def admits(schema: dict[str, Any], value: str) -> bool:
    """Whether a parameter's OpenAPI schema accepts ``value`` (then a 2xx is legitimate)."""
    for s in _string_schemas(schema):
        if len(value) < s.get("minLength", 0) or len(value) > s.get("maxLength", 1 << 30):
            continue
        if "pattern" in s and not re.search(s["pattern"], value):
            continue
        return True
    return False


def row_counts(engine: Engine) -> dict[str, int]:
    tables = metadata.sorted_tables
    query = select(*[select(func.count()).select_from(t).scalar_subquery() for t in tables])
    with engine.connect() as conn:
        row = conn.execute(query).one()
    return {t.name: int(n) for t, n in zip(tables, row, strict=True)}


def all_rows(engine: Engine) -> dict[str, Counter[str]]:
    out: dict[str, Counter[str]] = {}
    with engine.connect() as conn:
        for table in metadata.sorted_tables:
            out[table.name] = Counter(repr(tuple(r)) for r in conn.execute(select(table)))
    return out


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def served(
    request: pytest.FixtureRequest, make_api: Callable[[Settings], Api], tmp_path: Path
) -> Api:
    """A deployment with simulated traffic, a catalogue, user attributes and a production
    model (the serving routes answer from real data)."""
    keys = _secrets()
    overrides: dict[str, Any] = {}
    if request.param == "postgres":
        overrides["database_url"] = request.getfixturevalue("db_url_pg")
    settings = prepare(tmp_path / "data", keys, **overrides)
    return make_api(settings)


def test_injection_and_traversal_have_no_effect(served: Api) -> None:
    api = served
    app = api.client.app
    engine = api.services.store.engine
    spec = app.openapi()  # type: ignore[attr-defined]
    with engine.connect() as conn:
        seed_item = str(conn.execute(select(items.c.item_id).limit(1)).scalar_one())
    examples = _examples(seed_item)
    tables_before = set(inspect(engine).get_table_names())
    rows_before = all_rows(engine)
    failures: list[str] = []
    nul_failures: list[str] = []  # a known PostgreSQL problem, reported apart (see the end)
    sent = 0

    def server_errors(label: str) -> list[str]:
        return nul_failures if label.startswith("body") and label.endswith("#nul") else failures

    def baseline(name: str, method: str) -> str:
        reading = method == "GET"
        if name == "user_id":
            return SEED_USER if reading else "sec-user-1"
        if name == "item_id":
            return seed_item if reading else "sec-item-1"
        if name == "name":
            return "recommendations"
        if name == "version":
            return "1" if reading else "999"  # writes never touch the production version
        return "x1"

    def send(
        label: str,
        method: str,
        template: str,
        path: dict[str, str],
        *,
        raw_path: bool = False,
        params: dict[str, str] | None = None,
        body: Any = None,
        admitted: bool | None = None,
    ) -> None:
        nonlocal sent
        url = template
        for name, value in path.items():
            url = url.replace("{" + name + "}", value if raw_path else quote(value, safe=""))
        before = row_counts(engine)
        kw: dict[str, Any] = {"params": params}
        if method in {"POST", "PUT"}:
            kw["json"] = body if body is not None else {}
        where = f"{method} {template} [{label}]"
        sent += 1
        try:
            response = api.request(method, url, **kw)
        except httpx.InvalidURL:  # a raw control character: no client can send it unencoded
            return
        except Exception as exc:  # the test client re-raises what became a 500
            server_errors(label).append(f"{where}: 500 ({type(exc).__name__})")
            return
        after = row_counts(engine)
        status = response.status_code
        if status >= 500:
            server_errors(label).append(f"{where}: {status} {response.text[:200]}")
        elif admitted is False and status < 400:
            failures.append(f"{where}: {status} for a value its schema refuses")
        for marker in LEAK_MARKERS:
            if marker in response.text:
                failures.append(f"{where}: the response contains {marker!r}")
        for table, n in before.items():
            # A delete removes what the same id created (a few rows); an injected condition
            # would remove many. (Rows are added freely: the intended write, impressions.)
            if after[table] - n < -25:
                failures.append(f"{where}: {table} went from {n} to {after[table]} rows")

    routes = [r for r in route_table(app) if r.scope is not None]  # type: ignore[arg-type]
    for route in routes:
        method, template = route.method, route.path
        op = spec["paths"].get(template, {}).get(method.lower(), {})
        declared = {(p["in"], p["name"]): p["schema"] for p in op.get("parameters", [])}
        names = re.findall(r"\{([^}]+)\}", template)
        base = {name: baseline(name, method) for name in names}
        make_body = examples.get(f"{method} {template}")

        def fresh(make: Callable[[], Any] | None = make_body) -> Any:
            return make() if make else None

        for name in names:
            schema = declared.get(("path", name), {"type": "string"})
            for i, payload in enumerate(PAYLOADS):
                path = {**base, name: payload}
                send(
                    f"path {name} #{i}",
                    method,
                    template,
                    path,
                    body=fresh(),
                    admitted=admits(schema, payload),
                )
                send(f"raw path {name} #{i}", method, template, path, raw_path=True, body=fresh())
        for (where, name), schema in declared.items():
            if where != "query":
                continue
            for i, payload in enumerate(PAYLOADS):
                send(
                    f"query {name} #{i}",
                    method,
                    template,
                    base,
                    params={name: payload},
                    body=fresh(),
                    admitted=admits(schema, payload),
                )
        if make_body is None:
            continue
        for leaf in _leaves(make_body()):
            for i, payload in enumerate(BODY_PAYLOADS):
                doc = _replace(make_body(), leaf, payload)
                tag = "nul" if "\x00" in payload else str(i)
                send(f"body {'.'.join(map(str, leaf))} #{tag}", method, template, base, body=doc)
    assert sent > 500
    assert set(inspect(engine).get_table_names()) == tables_before, "a table disappeared"
    rows_after = all_rows(engine)
    for table, rows in rows_before.items():
        missing = rows - rows_after[table]
        if missing:
            failures.append(f"{table}: {sum(missing.values())} stored rows changed or vanished")
    # The deployment still serves its stored data.
    recs = api.request("GET", f"/v1/users/{SEED_USER}/recommendations", "serve")
    assert recs.status_code == 200 and recs.json()["items"]
    assert not failures, f"{len(failures)} problems:\n" + "\n".join(failures[:60])
    # U+0000 is refused with a 4xx everywhere (PostgreSQL could store it in neither text nor
    # JSON: events, items and users reject it at validation).
    assert not nul_failures, "\n".join(nul_failures)


def test_every_route_with_parameters_is_probed(sqlite_api: Api) -> None:
    """The probe above derives its cases from the route table: every non-public route with a
    path or query parameter, or a body, gets payloads (guards against a silent empty loop)."""
    spec = sqlite_api.client.app.openapi()  # type: ignore[attr-defined]
    probed = 0
    for route in route_table(sqlite_api.client.app):  # type: ignore[arg-type]
        if route.scope is None:
            continue
        op = spec["paths"][route.path][route.method.lower()]
        if op.get("parameters") or "{" in route.path or route.method in {"POST", "PUT"}:
            probed += 1
    assert probed >= 20


@pytest.mark.redis
def test_concurrent_requests_share_one_lease_renewal(redis_url: str) -> None:
    """Many requests of one process arriving together while the key's lease is spent wait for
    one renewal instead of each taking a lease: 300 at once from a bucket of 400 are all
    admitted, and the shared bucket lost about 300 tokens, not 300 leases of 20."""
    limits = RateLimits(serve_per_s=200.0, burst_s=2.0)
    limiter = RedisRateLimiter(redis_url, limits, lease_s=0.1)
    key = f"lease-{uuid.uuid4().hex[:8]}"

    async def burst() -> list[float]:
        return await asyncio.gather(*(limiter.acquire_async(key, "serve") for _ in range(300)))

    assert asyncio.run(burst()) == [0.0] * 300
    # What is left of the bucket: a fresh limiter takes one token at a time until refused.
    probe = RedisRateLimiter(redis_url, limits, lease_s=0.0)
    left = sum(probe.acquire(key, "serve") == 0.0 for _ in range(200))
    # 400 - 300 spent - at most one unspent lease of 20 (plus the refill while this ran).
    assert left >= 400 - 300 - 20
    limiter.close()
    probe.close()
