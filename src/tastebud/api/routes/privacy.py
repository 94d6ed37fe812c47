"""Data-subject rights: export, erasure and the transparency report (admin)."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Path, Query
from fastapi.responses import StreamingResponse
from starlette.concurrency import iterate_in_threadpool, run_in_threadpool

from tastebud.api.deps import ServicesDep, scoped
from tastebud.events.fields import Id
from tastebud.privacy import PrivacyLog
from tastebud.rights import (
    Receipt,
    TransparencyReport,
    UserExport,
    erase,
    export_user,
    transparency_report,
)

__all__ = [
    "erase_user",
    "export",
    "report",
    "router",
]

router = APIRouter(tags=["privacy"])
UserIdPath = Annotated[Id, Path(description="Your user id")]


@router.get(
    "/v1/users/{user_id}/export",
    response_class=StreamingResponse,
    # Streamed in pieces rather than validated as one model: the document's schema is declared.
    responses={
        200: {
            "model": UserExport,
            "content": {"application/json": {}},
            "description": "The export document (an attachment, `tastebud-export.json`)",
        }
    },
    **scoped("admin"),
)
async def export(user_id: UserIdPath, services: ServicesDep) -> StreamingResponse:
    """Everything held about the user in one JSON document, streamed: attributes and events
    with encrypted fields decrypted, consents and their history, features, real-time state,
    current predictions, the models holding the user, impressions and feedback."""
    key = services.pseudonymizer.user(user_id)
    await run_in_threadpool(
        PrivacyLog(services.store).record, "export", 1, {}, int(time.time() * 1000)
    )
    chunks = export_user(services.export_context(), user_id, key)
    return StreamingResponse(
        iterate_in_threadpool(chunks),
        media_type="application/json",
        headers={"Content-Disposition": 'attachment; filename="tastebud-export.json"'},
    )


@router.delete("/v1/users/{user_id}", response_model=Receipt, **scoped("admin"))
async def erase_user(user_id: UserIdPath, services: ServicesDep) -> Receipt:
    """Erase the user from every store: events, attributes, consents, aliases, features,
    real-time state, cached lists, impressions, feedback, every registered model version
    (archived ones too, as a new artifact revision) and precomputed batch lists. Returns a
    receipt per store. Idempotent; a tombstone refuses replayed events from before it."""
    key = services.pseudonymizer.user(user_id)
    return await run_in_threadpool(erase, services.erasure_context(), key)


@router.get("/v1/privacy/report", response_model=TransparencyReport, **scoped("admin"))
async def report(
    services: ServicesDep,
    month: Annotated[str | None, Query(pattern=r"^\d{4}-\d{2}$", description="YYYY-MM")] = None,
) -> TransparencyReport:
    """Counts for one month (default: this one): consent changes, personalization opt-outs,
    exports, erasures, retention deletions, key rotations."""
    return await run_in_threadpool(transparency_report, services.store, month)
