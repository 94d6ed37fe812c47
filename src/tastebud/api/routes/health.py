"""Liveness and readiness probes and Prometheus metrics (no key needed)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header
from fastapi.responses import JSONResponse, RedirectResponse, Response

from tastebud.api.deps import ServicesDep
from tastebud.api.schemas import HealthOut
from tastebud.errors import ServiceUnavailable
from tastebud.monitoring import render
from tastebud.store import current_revision, head_revision

__all__ = [
    "healthz",
    "metrics",
    "readyz",
    "root",
    "router",
]

router = APIRouter(tags=["health"])


@router.get("/", include_in_schema=False)
async def root() -> RedirectResponse:
    """A person who opens the server's address lands on the interactive API reference."""
    return RedirectResponse("/docs", status_code=307)


@router.get("/healthz", response_model=HealthOut)
async def healthz() -> HealthOut:
    """The process is up (it does not touch the database)."""
    return HealthOut(status="ok")


@router.get("/readyz", response_model=HealthOut, responses={503: {"model": HealthOut}})
def readyz(services: ServicesDep) -> HealthOut | JSONResponse:
    """Ready to serve: the database answers and its schema is at the newest migration."""
    checks: dict[str, str] = {}
    try:
        services.store.ping()
        revision = current_revision(services.store.engine)
        head = head_revision()
        checks["database"] = "ok"
        checks["schema"] = "ok" if revision == head else f"at {revision}, expected {head}"
    except ServiceUnavailable:
        checks["database"] = "unavailable"
    if all(v == "ok" for v in checks.values()):
        return HealthOut(status="ok", checks=checks)
    body = HealthOut(status="unavailable", checks=checks)
    return JSONResponse(body.model_dump(), status_code=503)


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {
            "content": {"text/plain": {"schema": {"type": "string"}}},
            "description": "Prometheus exposition (OpenMetrics when the Accept header asks for it)",
        }
    },
)
def metrics(accept: Annotated[str | None, Header(include_in_schema=False)] = None) -> Response:
    """Prometheus metrics: request latency per route, recommendation cache hits, fallbacks,
    model versions served, real-time freshness and ingest counts (``docs/monitoring.md``).
    With ``--workers N``, every worker answers for the whole server."""
    # A sync handler: in multi-process mode rendering reads every worker's file.
    body, content_type = render(accept)
    return Response(body, media_type=content_type)
