"""User profiles: ``GET /v1/users/{user_id}/profile``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from tastebud.api.deps import ServicesDep, scoped
from tastebud.events.schema import Id

__all__ = ["ProfileOut", "router"]

router = APIRouter(tags=["users"])


class ProfileOut(BaseModel):
    """What Tastebud knows about a user right now."""

    user_id: str
    features: dict[str, Any]
    """Latest feature values (see ``tastebud features list``)."""
    feature_source: str
    """``realtime`` (published by the latest build), ``snapshot`` (read from the database) or
    ``none`` (no snapshot holds this user yet)."""
    top_interests: list[str]
    """Categories of the current session first, then the snapshot's interests."""
    segment: str | None
    lifecycle_cohort: str | None
    session: dict[str, Any]
    """The live session: ``active``, ``events``, ``categories``, ``recent_actions``,
    ``consumed`` (``available`` is false when the real-time store does not answer)."""


@router.get("/v1/users/{user_id}/profile", response_model=ProfileOut, **scoped("serve"))
async def get_profile(
    user_id: Annotated[Id, Path(description="Your user id")], services: ServicesDep
) -> ProfileOut:
    """The user's features, top interests, segment, cohort and current session, read from the
    real-time store (one round trip) with the latest snapshot as fallback."""
    key = services.pseudonymizer.user(user_id)
    body = await run_in_threadpool(services.online.profile, key, services.now_ms())
    return ProfileOut(user_id=user_id, **body)
