"""Dependency aliases and route scopes: every route declares its scope with :func:`scoped`."""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import cache
from typing import Annotated, Any, TypedDict

import orjson
from fastapi import Depends, Request, params
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import JsonValue
from starlette.concurrency import run_in_threadpool

from tastebud.api.ratelimit import RateLimiter
from tastebud.apikeys import Principal, Scope, scope_allows
from tastebud.errors import Forbidden, MalformedJson, RateLimited, Unauthenticated
from tastebud.services import Services

__all__ = [
    "PrincipalDep",
    "SCOPE_KEY",
    "ScopedRoute",
    "ServicesDep",
    "admit",
    "read_json",
    "scoped",
]

SCOPE_KEY = "x-scope"
"""OpenAPI extension naming the scope a route needs (read by docs and the auth test)."""

_bearer = HTTPBearer(auto_error=False, description="An API key: `Bearer tb_<scope>_<id>_<secret>`")


async def get_services(request: Request) -> Services:
    """The process's :class:`Services` (set by ``create_app``)."""
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


def _origin_principal(request: Request, services: Services) -> Principal | None:
    """With ``cors_keyless``, a browser request without a key from an allowed origin acts as an
    ingest key of that origin (the seed's ``trackEvent`` sends no key). Anything else: ``None``."""
    settings = services.settings
    origin = request.headers.get("origin")
    if not settings.cors_keyless or origin is None or origin not in settings.cors_origins:
        return None
    return Principal(key_id=f"origin:{origin}", name=origin, scope="ingest")


@cache
def _require(scope: Scope) -> Any:
    async def require_scope(
        request: Request,
        services: ServicesDep,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> Principal:
        principal: Principal | None = None
        if credentials is None and scope == "ingest":
            principal = _origin_principal(request, services)
        if principal is None:
            if credentials is None or credentials.scheme.lower() != "bearer":
                raise Unauthenticated("missing API key: send 'Authorization: Bearer <key>'")
            token = credentials.credentials
            # Cached keys are checked on the event loop; a lookup goes to a worker thread.
            principal = services.keys.authenticate_cached(token)
            if principal is None:
                principal = await run_in_threadpool(services.keys.authenticate, token)
        await admit(getattr(request.app.state, "rate_limiter", None), principal, scope)
        request.state.principal = principal
        return principal

    return require_scope


async def admit(limiter: RateLimiter | None, principal: Principal, scope: Scope) -> None:
    """What every authenticated request passes (the route dependency and the recommendations
    fast path): the key's rate limit, counted before the scope check (a key probing routes it
    may not use is limited too), then the route's scope.

    Raises:
        RateLimited: the key is over its limit (``Retry-After`` in whole seconds).
        Forbidden: the key's scope does not allow the route.
    """
    if limiter is not None:
        wait = await limiter.acquire_async(principal.key_id, principal.scope)
        if wait > 0.0:
            seconds = max(1, math.ceil(wait))
            raise RateLimited(
                f"this API key exceeded its rate limit; retry after {seconds} s",
                retry_after_s=seconds,
            )
    if not scope_allows(principal.scope, scope):
        also = "" if scope == "admin" else " (or 'admin')"
        raise Forbidden(f"this route needs a key with scope '{scope}'{also}")


class ScopedRoute(TypedDict):
    """The route keyword arguments of :func:`scoped`."""

    dependencies: Sequence[params.Depends]
    openapi_extra: dict[str, JsonValue]


def scoped(scope: Scope, *, openapi_extra: dict[str, JsonValue] | None = None) -> ScopedRoute:
    """Route keyword arguments that enforce ``scope`` and document it in OpenAPI.

    Usage: ``@router.post("/v1/events", **scoped("ingest"))``.
    """
    return {
        "dependencies": [Depends(_require(scope))],
        "openapi_extra": {SCOPE_KEY: scope, **(openapi_extra or {})},
    }


def _current_principal(request: Request) -> Principal:
    principal: Principal = request.state.principal
    return principal


PrincipalDep = Annotated[Principal, Depends(_current_principal)]
"""The authenticated caller (only valid on routes declared with :func:`scoped`)."""


async def read_json(request: Request) -> Any:
    """Decode a request body with orjson.

    Raises:
        MalformedJson: the body is empty or not valid JSON (400).
    """
    body = await request.body()
    if not body:
        raise MalformedJson("the request body is empty; send a JSON document")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise MalformedJson(f"malformed JSON: {exc}") from exc
