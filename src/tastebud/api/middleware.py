"""ASGI middleware: request body limits, CORS for the ingest routes and a privacy-safe access
log."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

import orjson
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tastebud.monitoring import get_logger, observe_request

__all__ = ["AccessLogMiddleware", "BodyLimitMiddleware", "IngestCorsMiddleware"]

_log = get_logger("tastebud.access")
_level = logging.getLogger("tastebud.access")
"""Asked before each line: below INFO a disabled line costs nothing (structlog's lazy proxy
binds a logger on every call otherwise)."""
# Scraped every few seconds: one log line per scrape would drown the requests that matter.
_QUIET = frozenset({"/metrics"})


def _error(status: int, code: str, message: str) -> tuple[Message, Message]:
    body = orjson.dumps({"error": {"code": code, "message": message, "details": []}})
    start: Message = {
        "type": "http.response.start",
        "status": status,
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ],
    }
    return start, {"type": "http.response.body", "body": body}


class _TooLarge(Exception):
    pass


class BodyLimitMiddleware:
    """Refuses bodies larger than the route's limit with 413, before they are buffered.

    Args:
        app: The wrapped application.
        limit_for: Maps a request path to its byte limit.
    """

    def __init__(self, app: ASGIApp, limit_for: Callable[[str], int]) -> None:
        self.app = app
        self.limit_for = limit_for

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["path"])
        message = f"the request body exceeds {limit:,} bytes"
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    too_big = int(value) > limit
                except ValueError:
                    too_big = False
                if too_big:
                    for m in _error(413, "payload_too_large", message):
                        await send(m)
                    return
        received = 0
        started = exceeded = replaced = False

        async def limited_receive() -> Message:
            nonlocal received, exceeded
            msg = await receive()
            if msg["type"] == "http.request":
                received += len(msg.get("body", b""))
                if received > limit:
                    exceeded = True
                    raise _TooLarge
            return msg

        async def tracking_send(msg: Message) -> None:
            nonlocal started, replaced
            if msg["type"] == "http.response.start":
                started = True
                # Whatever the app made of a body cut off at the limit (FastAPI turns any error
                # while reading a declared body model into "400 error parsing the body"), the
                # answer is 413.
                if exceeded:
                    replaced = True
                    for m in _error(413, "payload_too_large", message):
                        await send(m)
                    return
            if not replaced:
                await send(msg)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _TooLarge:
            if not started:
                for m in _error(413, "payload_too_large", message):
                    await send(m)


class IngestCorsMiddleware:
    """CORS on the ingest routes only, for the configured origins (Starlette's
    ``CORSMiddleware`` applied to the paths ``applies`` accepts): preflights are answered and
    cached for ``max_age`` seconds, every answer (errors included) carries
    ``Access-Control-Allow-Origin`` for an allowed origin, credentials are never allowed, and
    ``Retry-After`` is readable by the page. Other routes answer no CORS at all: a page may send
    events, never read recommendations or profiles.

    Args:
        app: The wrapped application.
        origins: Allowed origins (normalised ``scheme://host[:port]``).
        applies: Whether a request path is an ingest route.
        max_age: Seconds a browser may cache a preflight answer.
    """

    def __init__(
        self,
        app: ASGIApp,
        origins: Sequence[str],
        applies: Callable[[str], bool],
        max_age: int,
    ) -> None:
        self.app = app
        self.applies = applies
        self.cors = CORSMiddleware(
            app,
            allow_origins=list(origins),
            allow_methods=["POST", "PUT"],
            allow_headers=["Authorization", "Content-Type"],
            allow_credentials=False,
            expose_headers=["Retry-After"],
            max_age=max_age,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.applies(scope["path"]):
            await self.cors(scope, receive, send)
        else:
            await self.app(scope, receive, send)


class AccessLogMiddleware:
    """Logs one line per request with the *route template* (``/v1/users/{user_id}``), never the
    raw path, query string or headers, which carry user ids and keys, and records its latency in
    ``tastebud_request_seconds`` under the same template (``/metrics`` itself is not logged)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def capture(msg: Message) -> None:
            nonlocal status
            if msg["type"] == "http.response.start":
                status = int(msg["status"])
            await send(msg)

        try:
            await self.app(scope, receive, capture)
        finally:
            seconds = time.perf_counter() - start
            # The router leaves the matched route in the scope; its template, never the raw
            # path, labels the latency (a bounded set of series, no user ids).
            route = scope.get("route")
            template = getattr(route, "path", None) or "<unmatched>"
            method = scope.get("method", "GET")
            observe_request(template, method, status, seconds)
            if template not in _QUIET and _level.isEnabledFor(logging.INFO):
                _log.info(
                    "request",
                    method=method,
                    route=template,
                    status=status,
                    ms=round(seconds * 1000, 2),
                )
