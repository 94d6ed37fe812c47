"""The recommendations fast path (issue 16, point 12): the same answers as the FastAPI route
for every request, well-formed or not, and it answers the well-formed ones itself."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client import REGISTRY
from starlette.testclient import TestClient

from tastebud.api import create_app
from tastebud.api.fastpath import RecommendationsFastPath
from tastebud.api.routes.recommendations import RECOMMENDATIONS_PATH
from tastebud.config import RateLimits, Settings
from tastebud.services import build_services
from test_serving import _secrets, prepare

KNOWN = "nb-user-0000007"


def fast_path_of(app: FastAPI) -> RecommendationsFastPath:
    """The fast path in the app's built middleware stack."""
    node: Any = app.middleware_stack
    while node is not None:
        if isinstance(node, RecommendationsFastPath):
            return node
        node = getattr(node, "app", None)
    raise AssertionError("no fast path in the middleware stack")


class Twin:
    """The same deployment twice (copies of one data directory, one set of keys): with the
    fast path and without it."""

    def __init__(self, data_dir: Path, tmp: Path, keys: dict[str, str], **settings: Any) -> None:
        self.clients: list[TestClient] = []
        self.services = []
        for name, fast in (("fast", True), ("route", False)):
            copy = tmp / name
            shutil.copytree(data_dir, copy)
            s = Settings(data_dir=copy, **keys, **settings)
            services = build_services(s, migrate=True)
            client = TestClient(create_app(s, services=services, fast_path=fast))
            client.__enter__()
            self.clients.append(client)
            self.services.append(services)
        self.fast = fast_path_of(self.clients[0].app)  # type: ignore[arg-type]

    def both(self, path: str, headers: dict[str, str]) -> tuple[httpx.Response, httpx.Response]:
        fast, route = (c.get(path, headers=headers) for c in self.clients)
        return fast, route

    def close(self) -> None:
        for client, services in zip(self.clients, self.services, strict=True):
            client.__exit__(None, None, None)
            services.close()


def comparable(r: httpx.Response) -> tuple[int, Any, dict[str, str]]:
    """Status, body (without the random ``list_id``) and the headers that carry meaning."""
    body = r.json()
    if isinstance(body, dict):
        body.pop("list_id", None)
    headers = {
        k: v
        for k, v in r.headers.items()
        if k.startswith("x-tastebud") or k in ("content-type", "retry-after", "www-authenticate")
    }
    return r.status_code, body, headers


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str], dict]:
    """A data dir with a production model and one key per scope (created before copying)."""
    data_dir = tmp_path_factory.mktemp("fastpath") / "data"
    keys = _secrets()
    prepare(data_dir, keys)
    services = build_services(Settings(data_dir=data_dir, **keys))
    tokens = {s: services.keys.create(f"t-{s}", s)[1] for s in ("ingest", "serve", "admin")}
    services.close()
    return data_dir, keys, tokens


@pytest.fixture
def twin(deployment: tuple[Path, dict[str, str], dict], tmp_path: Path) -> Iterator[Twin]:
    data_dir, keys, _ = deployment
    pair = Twin(data_dir, tmp_path, keys)
    yield pair
    pair.close()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_every_request_gets_the_routes_answer(
    twin: Twin, deployment: tuple[Path, dict[str, str], dict]
) -> None:
    tokens = deployment[2]
    serve = bearer(tokens["serve"])
    base = f"/v1/users/{KNOWN}/recommendations"
    # Each key's first use is looked up in the database (the route does that off the loop);
    # from then on the key is cached and the fast path may answer.
    for token in tokens.values():
        twin.both(base, bearer(token))
    well_formed = [
        (base, serve),
        (base + "?k=5", serve),
        (base + "?k=5", serve),  # the list cache answers both the same way
        (base + "?k=20&category=category-01", serve),
        (base + "?k=3&exclude=item-1,item-2&device=mobile&hour=22&locale=de-DE&network=4g", serve),
        (base + "?k=4&unknown=ignored", serve),
        ("/v1/users/someone-new/recommendations?k=6&device=desktop", serve),
        ("/v1/users/caf%C3%A9%20au%20lait/recommendations", serve),
        (base, bearer(tokens["admin"])),
        (base, bearer(tokens["ingest"])),  # 403: a cached key of the wrong scope
    ]
    route_only = [
        (base + "?k=0", serve),
        (base + "?k=101", serve),
        (base + "?k=ten", serve),
        (base + "?k=1&k=2", serve),  # repeated: which one counts is the route's business
        (base + "?hour=24", serve),
        (base + "?category=", serve),
        (base + "?exclude=,a", serve),
        (base + "?device=" + "x" * 33, serve),
        ("/v1/users/%01bad/recommendations", serve),
        ("/v1/users/" + "u" * 129 + "/recommendations", serve),
        (base, {}),
        (base, {"Authorization": "Basic dXNlcjpwdw=="}),
        (base, {"Authorization": "Bearer "}),
        (base, bearer("tb_serve_000000000000_not-a-secret")),
    ]
    for path, headers in well_formed + route_only:
        before = twin.fast.answered
        fast, route = twin.both(path, headers)
        assert comparable(fast) == comparable(route), path
        took = twin.fast.answered - before
        assert took == (1 if (path, headers) in well_formed else 0), path
    statuses = [twin.both(p, h)[0].status_code for p, h in route_only]
    assert statuses == [422] * 3 + [200] + [422] * 6 + [401] * 4


def test_limits_and_a_missing_model_answer_alike(
    deployment: tuple[Path, dict[str, str], dict], tmp_path: Path
) -> None:
    data_dir, keys, tokens = deployment
    limited = Twin(data_dir, tmp_path / "limited", keys, rate_limits=RateLimits(serve_per_s=1.0))
    try:
        path = f"/v1/users/{KNOWN}/recommendations"
        answers = [limited.both(path, bearer(tokens["serve"])) for _ in range(4)]
        assert [comparable(f) for f, _ in answers] == [comparable(r) for _, r in answers]
        assert answers[-1][0].status_code == 429 and limited.fast.answered >= 1
    finally:
        limited.close()
    # No model yet: 503 model_not_ready from both.
    empty = tmp_path / "empty" / "data"
    services = build_services(Settings(data_dir=empty, **keys), migrate=True)
    token = services.keys.create("t", "serve")[1]
    services.close()
    bare = Twin(empty, tmp_path / "bare", keys)
    try:
        for _ in range(2):
            fast, route = bare.both("/v1/users/u/recommendations", bearer(token))
        assert comparable(fast) == comparable(route)
        assert fast.status_code == 503 and bare.fast.answered == 1
    finally:
        bare.close()


def test_its_answers_are_logged_and_measured_under_the_route_template(
    twin: Twin, deployment: tuple[Path, dict[str, str], dict], caplog: pytest.LogCaptureFixture
) -> None:
    serve = bearer(deployment[2]["serve"])
    path = f"/v1/users/{KNOWN}/recommendations"
    labels = {"route": RECOMMENDATIONS_PATH, "method": "GET", "status": "200"}
    twin.clients[0].get(path, headers=serve)  # the key's first use: the route caches it
    before = REGISTRY.get_sample_value("tastebud_request_seconds_count", labels) or 0.0
    caplog.set_level(logging.INFO, logger="tastebud.access")
    answered = twin.fast.answered
    assert twin.clients[0].get(path, headers=serve).status_code == 200
    assert twin.fast.answered == answered + 1
    after = REGISTRY.get_sample_value("tastebud_request_seconds_count", labels)
    assert after == before + 1
    lines = [r.getMessage() for r in caplog.records if r.name == "tastebud.access"]
    assert any(RECOMMENDATIONS_PATH in line and KNOWN not in line for line in lines)


def test_server_processes_shorten_the_gil_switch_interval_and_parse_redis_in_c() -> None:
    import sys

    import redis.utils

    from tastebud.api.app import SWITCH_INTERVAL_S, tune_threads

    default = sys.getswitchinterval()
    try:
        tune_threads()
        assert SWITCH_INTERVAL_S < default
        assert sys.getswitchinterval() == pytest.approx(SWITCH_INTERVAL_S)
    finally:
        sys.setswitchinterval(default)
    assert redis.utils.HIREDIS_AVAILABLE


def test_a_server_process_freezes_its_heap_once_the_models_are_loaded(
    deployment: tuple[Path, dict[str, str], dict], tmp_path: Path
) -> None:
    """``create_app_from_env`` asks for it: the lifespan freezes the heap after the models
    load, so full collections no longer walk them (an app built for tests does not)."""
    import gc

    data_dir, keys, _ = deployment
    copy = tmp_path / "data"
    shutil.copytree(data_dir, copy)
    for freeze in (False, True):
        gc.unfreeze()
        app = create_app(Settings(data_dir=copy, **keys))
        app.state.freeze_after_start = freeze
        with TestClient(app):
            assert (gc.get_freeze_count() > 0) is freeze
        gc.unfreeze()
