"""Event collection: ``POST /v1/events``, ``/v1/events/batch`` and the seed's ``/api/events``."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Request, Response
from pydantic import JsonValue, TypeAdapter
from starlette.concurrency import run_in_threadpool

from tastebud.api.deps import ServicesDep, read_json, scoped
from tastebud.api.schemas import BatchOut, EventOut
from tastebud.errors import Conflict, ConsentRequired, InvalidEvent, PayloadTooLarge
from tastebud.events.compat import from_camel_payload
from tastebud.events.ingest import EventResult
from tastebud.events.schema import EventIn
from tastebud.services import Services

__all__ = [
    "EVENT_SCHEMAS",
    "post_batch",
    "post_event",
    "post_seed_event",
    "router",
]

router = APIRouter(tags=["events"])

_EVENT_JSON_SCHEMA = TypeAdapter(EventIn).json_schema(
    ref_template="#/components/schemas/{model}", mode="validation"
)
EVENT_SCHEMAS: dict[str, JsonValue] = dict(_EVENT_JSON_SCHEMA.pop("$defs", {}))
"""Component schemas of every event model (merged into the OpenAPI document by the app)."""
EVENT_SCHEMAS["Event"] = _EVENT_JSON_SCHEMA
EVENT_SCHEMAS["EventBatch"] = {
    "type": "object",
    "required": ["events"],
    "properties": {
        "events": {
            "type": "array",
            "items": {"$ref": "#/components/schemas/Event"},
            "description": "Up to 1,000 events (and 1 MiB).",
        }
    },
}


def _body_doc(ref: str, example: JsonValue) -> dict[str, JsonValue]:
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {"$ref": f"#/components/schemas/{ref}"},
                    "example": example,
                }
            },
        }
    }


_EXAMPLE: dict[str, JsonValue] = {
    "event_id": "3f1c0d5e-2b7a-4c1e-9f1a-0d2b6c9e8a71",
    "event_type": "content_engagement",
    "timestamp": "2026-11-26T10:15:00+01:00",
    "user_id": "u-1842",
    "session_id": "s-77",
    "data": {"item_id": "article-42", "time_spent_ms": 48000, "scroll_depth": 0.8},
    "context": {"device_type": "mobile", "locale": "en-GB"},
}


def _single(services: Services, raw: Any) -> EventResult:
    return services.ingestor.ingest([raw]).results[0]


async def _answer_one(services: Services, raw: Any, response: Response) -> EventOut:
    """Ingest one event; 202 accepted, 200 duplicate, or the error for a rejection."""
    result = await run_in_threadpool(_single, services, raw)
    _raise_for(result)
    if result.status == "duplicate":
        response.status_code = 200
    assert result.event_id is not None
    return EventOut(event_id=result.event_id, status=result.status)


def _raise_for(result: EventResult) -> None:
    if result.status != "rejected":
        return
    reason = result.reason or "invalid event"
    if result.code == "consent_required":
        raise ConsentRequired(reason, details=list(result.details))
    if result.code == "user_erased":
        raise Conflict(reason, details=list(result.details))
    raise InvalidEvent(reason, details=list(result.details))


@router.post(
    "/v1/events",
    status_code=202,
    summary="Send one event",
    response_model=EventOut,
    responses={200: {"model": EventOut, "description": "Already stored (same event_id)"}},
    **scoped("ingest", openapi_extra=_body_doc("Event", _EXAMPLE)),
)
async def post_event(request: Request, response: Response, services: ServicesDep) -> EventOut:
    """Validate and store one event. Idempotent on ``event_id``: resending answers
    ``200 duplicate`` and stores nothing; an absent ``event_id`` is derived from the
    event's content (a keyed hash: a retry is a duplicate) and returned."""
    return await _answer_one(services, await read_json(request), response)


@router.post(
    "/v1/events/batch",
    summary="Send up to 1,000 events",
    response_model=BatchOut,
    **scoped("ingest", openapi_extra=_body_doc("EventBatch", {"events": [_EXAMPLE]})),
)
async def post_batch(request: Request, services: ServicesDep) -> Response:
    """Validate and store a batch. Every event gets its own result, in order: ``accepted``,
    ``duplicate`` (its ``event_id`` is already stored) or ``rejected`` with a reason; good events
    are stored even when others are bad. Resending a batch stores nothing twice."""
    body = await read_json(request)
    if not isinstance(body, dict) or not isinstance(body.get("events"), list):
        raise InvalidEvent(
            'the body must be {"events": [...]}',
            details=[{"field": "events", "message": "required"}],
        )
    events = body["events"]
    limit = services.settings.max_batch_events
    if len(events) > limit:
        raise PayloadTooLarge(
            f"a batch holds at most {limit:,} events; this one has {len(events):,}"
        )
    result = await run_in_threadpool(services.ingestor.ingest, events)
    # Serialized directly (a BatchOut model per batch costs more than the insert): the
    # document is the BatchOut schema declared above.
    body = orjson.dumps(
        {
            "accepted": result.accepted,
            "duplicates": result.duplicates,
            "rejected": result.rejected,
            "results": [
                {"event_id": r.event_id, "status": r.status, "reason": r.reason}
                if r.status != "rejected"
                else {
                    "event_id": r.event_id,
                    "status": r.status,
                    "reason": r.reason,
                    "code": r.code,
                    "details": r.details,
                }
                for r in result.results
            ],
        }
    )
    return Response(body, media_type="application/json")


@router.post(
    "/api/events",
    status_code=202,
    summary="Send one event (the seed's camelCase trackEvent payload)",
    response_model=EventOut,
    **scoped(
        "ingest",
        openapi_extra=_body_doc(
            "Event",
            {
                "timestamp": "2026-11-26T09:15:00.000Z",
                "userId": "u-1842",
                "sessionId": "s-77",
                "eventType": "page_view",
                "data": {"url": "/pricing", "title": "Pricing"},
                "context": {
                    "userAgent": "Mozilla/5.0",
                    "url": "https://example.com/pricing",
                    "referrer": "",
                },
            },
        ),
    ),
)
async def post_seed_event(request: Request, response: Response, services: ServicesDep) -> EventOut:
    """Alias of ``POST /v1/events`` accepting ``userId``, ``sessionId``, ``eventType``,
    ``data`` and ``context`` in camelCase, as the seed document's ``trackEvent`` sends them."""
    return await _answer_one(services, from_camel_payload(await read_json(request)), response)
