"""The hottest route without the framework's per-request work.

``GET /v1/users/{user_id}/recommendations`` is most of a deployment's traffic. Through FastAPI
it costs about 0.3 ms of CPU before the engine starts (matching some forty routes, solving the
dependency graph, validating eight query parameters one by one): as much as scoring a user.
:class:`RecommendationsFastPath` answers the common case itself, with the same parts the route
uses: the same query model (:class:`~tastebud.api.routes.recommendations.RecommendationsQuery`),
the same key check, rate limiter and scope rule, the same answer
(:func:`~tastebud.api.routes.recommendations.recommendations_answer`) and the same error bodies
(:func:`~tastebud.api.errors.error_response`).

It takes only a request that is well-formed and whose key is in the key cache; everything else
(a missing, malformed, unknown or uncached key, an invalid path or query, a repeated query
parameter) goes to the FastAPI route untouched, which gives the documented answer, so no error
message exists twice. tests/test_fastpath.py sends the same requests to an app with and
without it and compares the answers.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl

from fastapi.security.utils import get_authorization_scheme_param
from pydantic import TypeAdapter, ValidationError
from starlette.datastructures import State
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from tastebud.api.deps import admit
from tastebud.api.errors import error_response
from tastebud.api.routes.recommendations import (
    RecommendationsAnswer,
    RecommendationsQuery,
    recommendations_answer,
)
from tastebud.errors import TastebudError, Unauthenticated
from tastebud.events.fields import Id
from tastebud.services import Services

__all__ = ["RecommendationsFastPath"]

_PATH = re.compile(r"^/v1/users/([^/]+)/recommendations$")
_USER_ID: TypeAdapter[str] = TypeAdapter(Id)


class RecommendationsFastPath:
    """ASGI middleware answering well-formed recommendation requests with a cached key (see the
    module docstring); the innermost of the app's own middleware, so the access log, metrics
    and body limits see its answers as the route's.

    Args:
        app: The wrapped application (FastAPI's exception middleware and router).
        state: The app's state (``services`` and ``rate_limiter`` are read per request).
        route: The FastAPI route it stands in for (left in the scope for the access log).
    """

    def __init__(self, app: ASGIApp, state: State, route: Any) -> None:
        self.app = app
        self.state = state
        self.route = route
        self.answered = 0
        """Requests answered here (the rest went to the route)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["method"] == "GET"
            and not scope.get("root_path")
            and (match := _PATH.match(scope["path"])) is not None
        ):
            answer = await self._answer(scope, match.group(1))
            if answer is not None:
                self.answered += 1
                scope["route"] = self.route
                if isinstance(answer, RecommendationsAnswer):  # the bytes, with no Response
                    await _send(send, answer)
                else:
                    await answer(scope, receive, send)
                return
        await self.app(scope, receive, send)

    async def _answer(
        self, scope: Scope, raw_user_id: str
    ) -> RecommendationsAnswer | Response | None:
        """The answer, or ``None`` when the route must answer."""
        token = _bearer_token(scope)
        query = _single_valued(scope["query_string"])
        if token is None or query is None:
            return None
        try:
            user_id = _USER_ID.validate_python(raw_user_id)
            params = RecommendationsQuery.model_validate(query)
        except ValidationError:
            return None
        services: Services = self.state.services
        try:
            principal = services.keys.authenticate_cached(token)
        except Unauthenticated:
            return None
        if principal is None:  # a database lookup: the route runs it off the event loop
            return None
        scope.setdefault("state", {})["principal"] = principal
        try:
            await admit(getattr(self.state, "rate_limiter", None), principal, "serve")
            return await recommendations_answer(services, user_id, params)
        except TastebudError as exc:
            return error_response(exc)


async def _send(send: Send, answer: RecommendationsAnswer) -> None:
    """The answer as Starlette's ``Response`` would send it (same headers, same bytes)."""
    headers = [
        (k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in answer.headers.items()
    ]
    headers += [
        (b"content-length", str(len(answer.body)).encode("latin-1")),
        (b"content-type", b"application/json"),
    ]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": answer.body})


def _bearer_token(scope: Scope) -> str | None:
    """The credentials of the first ``Authorization`` header as FastAPI's ``HTTPBearer`` reads
    them; ``None`` without a well-formed bearer header."""
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, credentials = get_authorization_scheme_param(value.decode("latin-1"))
            if scheme.lower() != "bearer" or not credentials:
                return None
            return credentials
    return None


def _single_valued(query_string: bytes) -> dict[str, str] | None:
    """The query parameters as Starlette parses them; ``None`` when one is repeated (which
    value counts is then the route's business)."""
    pairs = parse_qsl(query_string.decode("latin-1"), keep_blank_values=True)
    out = dict(pairs)
    return out if len(out) == len(pairs) else None
