"""The one place where domain errors become HTTP responses (``{"error": {...}}``)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from tastebud import errors as e
from tastebud.events.ingest import MAX_DETAILS
from tastebud.monitoring import get_logger

__all__ = ["STATUS", "error_response", "install_error_handlers"]

_log = get_logger(__name__)

STATUS: dict[type[e.TastebudError], int] = {
    e.MalformedJson: 400,
    e.PayloadTooLarge: 413,
    e.InvalidInput: 422,
    e.Unauthenticated: 401,
    e.Forbidden: 403,
    e.ConsentRequired: 403,
    e.NotFound: 404,
    e.Conflict: 409,
    e.RateLimited: 429,
    e.ServiceUnavailable: 503,
    e.ArtifactInvalid: 500,
    e.ConfigError: 500,
}
"""Status per error class; the most specific class in an error's MRO wins."""

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    429: "rate_limited",
}


def _body(code: str, message: str, details: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details or []}}


def status_for(exc: e.TastebudError) -> int:
    """HTTP status of a domain error."""
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 500


def error_response(exc: e.TastebudError) -> JSONResponse:
    """The answer to a domain error: its status, ``{"error": {...}}``, and ``WWW-Authenticate``
    (401) or ``Retry-After`` (429)."""
    status = status_for(exc)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    if isinstance(exc, e.RateLimited):
        headers = {"Retry-After": str(exc.retry_after_s)}
    return JSONResponse(
        _body(exc.code, exc.message, exc.details), status_code=status, headers=headers
    )


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers on ``app``."""

    @app.exception_handler(e.TastebudError)
    async def _domain(request: Request, exc: e.TastebudError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        details = []
        malformed = False
        for err in exc.errors():
            loc = [str(p) for p in err.get("loc", ()) if p != "body"]
            if err.get("type") == "json_invalid":
                malformed = True
            message = str(err.get("msg", "invalid value")).removeprefix("Value error, ")
            details.append({"field": ".".join(loc) or "body", "message": message})
        if malformed:
            return JSONResponse(
                _body("malformed_json", "malformed JSON in the request body", details), 400
            )
        details = details[:MAX_DETAILS]  # one entry per problem, bounded
        summary = "; ".join(f"{d['field']}: {d['message']}" for d in details[:5])
        if len(details) > 5:
            summary += f" (and {len(details) - 5} more in details)"
        return JSONResponse(_body("invalid_request", summary, details), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, "error")
        return JSONResponse(
            _body(code, str(exc.detail)), status_code=exc.status_code, headers=exc.headers
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        # The exception text may hold data; log its type only.
        _log.error("unhandled error", error_type=type(exc).__name__)
        return JSONResponse(_body("internal_error", "internal server error"), status_code=500)
