"""The FastAPI application factory."""

from __future__ import annotations

import gc
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute
from fastapi_offline import FastAPIOffline
from starlette.concurrency import run_in_threadpool
from starlette.routing import compile_path

from tastebud import __version__
from tastebud.api.deps import SCOPE_KEY
from tastebud.api.errors import install_error_handlers
from tastebud.api.fastpath import RecommendationsFastPath
from tastebud.api.middleware import (
    AccessLogMiddleware,
    BodyLimitMiddleware,
    IngestCorsMiddleware,
)
from tastebud.api.ratelimit import make_rate_limiter
from tastebud.api.routes import (
    events,
    experiments,
    health,
    items,
    models,
    predictions,
    privacy,
    profiles,
    recommendations,
    users,
)
from tastebud.catalog import ItemBatchEntry
from tastebud.config import Settings
from tastebud.monitoring import configure_logging, prepare_multiprocess
from tastebud.services import Services, build_services

__all__ = [
    "RouteInfo",
    "SWITCH_INTERVAL_S",
    "create_app",
    "create_app_from_env",
    "limit_blas_threads",
    "route_table",
    "tune_gc",
    "tune_threads",
]

_BATCH_PATHS = frozenset({"/v1/events/batch", "/v1/items/batch"})

DESCRIPTION = """
Tastebud collects behaviour events, trains personalization models and serves recommendations.

Authenticate with `Authorization: Bearer <key>`; create keys with `tastebud keys create`.
Each route's required scope is listed as `x-scope` (`ingest`, `serve` or `admin`; `admin` may do
everything). Errors look like `{"error": {"code", "message", "details"}}`.
"""


def create_app(
    settings: Settings | None = None,
    *,
    services: Services | None = None,
    fast_path: bool = True,
) -> FastAPI:
    """Build the API for ``settings`` (default: from the environment).

    Args:
        settings: Deployment settings.
        services: Pre-built services (tests); built from ``settings`` when omitted.
        fast_path: Answer well-formed recommendation requests without FastAPI's per-request
            work (:mod:`tastebud.api.fastpath`; the same answers, which tests compare with
            ``fast_path=False``).
    """
    settings = settings or (services.settings if services else Settings())
    configure_logging(settings.log_level, json=settings.log_json)
    owned = services is None
    services = services or build_services(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Load the production models, then poll the registry for promotions and rollbacks.
        await run_in_threadpool(app.state.services.start)
        if getattr(app.state, "freeze_after_start", False):
            # A server process: the models just loaded join the long-lived heap that the
            # collector no longer walks (tune_gc froze what existed before them).
            gc.collect()
            gc.freeze()
        yield
        app.state.services.stop()
        if app.state.rate_limiter is not None:
            app.state.rate_limiter.close()
        if owned:
            app.state.services.close()

    # Swagger UI and ReDoc served from the package, not a CDN: /docs works offline.
    app = FastAPIOffline(
        title="Tastebud",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.services = services
    # Per API key, by scope (api.ratelimit); read by the auth dependency in api.deps.
    app.state.rate_limiter = make_rate_limiter(settings)
    install_error_handlers(app)
    for module in (
        health,
        events,
        items,
        users,
        profiles,
        predictions,
        recommendations,
        models,
        experiments,
        privacy,
    ):
        app.include_router(module.router)

    def limit_for(path: str) -> int:
        return settings.max_batch_bytes if path in _BATCH_PATHS else settings.max_body_bytes

    if fast_path:  # the innermost of ours: logged, measured and limited like the route
        hot = next(
            r
            for r in recommendations.router.routes
            if getattr(r, "path", None) == recommendations.RECOMMENDATIONS_PATH
        )
        app.add_middleware(RecommendationsFastPath, state=app.state, route=hot)
    app.add_middleware(BodyLimitMiddleware, limit_for=limit_for)
    if settings.cors_origins:
        ingest = [compile_path(r.path)[0] for r in route_table(app) if r.scope == "ingest"]

        def is_ingest(path: str) -> bool:
            return any(regex.match(path) for regex in ingest)

        app.add_middleware(
            IngestCorsMiddleware,
            origins=settings.cors_origins,
            applies=is_ingest,
            max_age=settings.cors_max_age_s,
        )
    app.add_middleware(AccessLogMiddleware)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components.update(events.EVENT_SCHEMAS)
        entry = ItemBatchEntry.model_json_schema(ref_template="#/components/schemas/{model}")
        components.update(entry.pop("$defs", {}))
        components["ItemBatchEntry"] = entry
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


@dataclass(frozen=True)
class RouteInfo:
    """One method of one route, with the scope it declares (``None``: public)."""

    method: str
    path: str
    scope: str | None


def route_table(app: FastAPI) -> list[RouteInfo]:
    """Every (method, path, scope) the app serves, including routes of included routers."""
    out: list[RouteInfo] = []

    def walk(routes: list[Any], prefix: str) -> None:
        for route in routes:
            nested = getattr(route, "original_router", None)
            if nested is not None:  # FastAPI >= 0.160 keeps included routers as one node
                context = getattr(route, "include_context", None)
                walk(list(nested.routes), prefix + (getattr(context, "prefix", "") or ""))
                continue
            path = getattr(route, "path", None)
            if path is None:
                continue
            scope = (
                (route.openapi_extra or {}).get(SCOPE_KEY) if isinstance(route, APIRoute) else None
            )
            for method in sorted(
                (getattr(route, "methods", None) or {"GET"}) - {"HEAD", "OPTIONS"}
            ):
                out.append(RouteInfo(method, prefix + path, scope))

    walk(list(app.routes), "")
    return out


def tune_gc() -> None:
    """Garbage-collector settings for a server process.

    Ingest allocates many short-lived containers; with CPython's default generation-0
    threshold (700) the collector runs every few events and rescans the long-lived heap
    (modules, pydantic schemas). Freezing what exists after start-up and collecting less often
    cut validation time by about a third in ``bench/ingest.py``.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)


SWITCH_INTERVAL_S = 0.0005
"""How long a thread may hold the GIL while another waits for it, in a server process."""


def tune_threads() -> None:
    """A short GIL switch interval for a server process (:data:`SWITCH_INTERVAL_S`).

    The event loop shares its process with threads that wait on the network (the real-time
    store's readers, the rate limiter, the impression writer). When one of them has its answer
    while the loop computes, CPython makes it wait up to the switch interval (5 ms by default)
    for the GIL, and the request waiting on that answer with it: at 1,000 recommendations/s
    the waits queued up into a p99 of 200 ms on 2 cores with the processes half idle, and the
    hand-offs cost CPU. At 0.5 ms the same server sustained twice the rate (bench/serve.py,
    docs/benchmarks.md).
    """
    sys.setswitchinterval(SWITCH_INTERVAL_S)


def limit_blas_threads() -> None:
    """One BLAS/OpenMP thread per server process. A request scores one user against every
    item: BLAS's own thread pool only fights the server's threads for the cores (measured:
    under 30 requests/s instead of about 1,400 on 2 cores); the server's concurrency comes
    from its threads and processes instead."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)


def create_app_from_env() -> FastAPI:
    """Factory for ``uvicorn --factory`` (what ``tastebud serve`` runs in each worker)."""
    prepare_multiprocess()  # clears an earlier run's metric files ($PROMETHEUS_MULTIPROC_DIR)
    limit_blas_threads()
    app = create_app(Settings())
    tune_gc()
    tune_threads()
    app.state.freeze_after_start = True
    return app
