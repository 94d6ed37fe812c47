"""User profiles: ``GET /v1/users/{user_id}/profile``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path
from pydantic import BaseModel, JsonValue
from starlette.concurrency import run_in_threadpool

from tastebud.api.deps import ServicesDep, scoped
from tastebud.events.fields import Id

__all__ = [
    "ProfileOut",
    "RecentActionOut",
    "SessionOut",
    "get_profile",
    "router",
]

router = APIRouter(tags=["users"])


class RecentActionOut(BaseModel):
    """One action of the live session."""

    type: str
    """The event type."""
    item_id: str | None
    category: str | None
    at_ms: int
    """Event time, ms since the epoch."""


class SessionOut(BaseModel):
    """The live session, from the real-time store."""

    available: bool
    """``false`` when the real-time store did not answer in time (then nothing else is
    known)."""
    active: bool
    """An action within the last 30 minutes."""
    events: int
    """Actions in the current session."""
    categories: dict[str, int]
    """Actions per category in the current session."""
    recent_actions: list[RecentActionOut]
    """The ten most recent actions, newest first."""
    consumed: list[str] | None = None
    """Recently consumed items, newest first (absent when the store did not answer)."""
    feedback: dict[str, str] | None = None
    """Item -> ``like``, ``dislike`` or ``not_interested`` (absent when the store did not
    answer)."""


class ProfileOut(BaseModel):
    """What Tastebud knows about a user right now."""

    user_id: str
    features: dict[str, JsonValue]
    """Latest feature values by name (see ``tastebud features list``): a JSON document whose
    fields are the feature definitions."""
    feature_source: str
    """``realtime`` (published by the latest build), ``snapshot`` (read from the database) or
    ``none`` (no snapshot holds this user yet)."""
    top_interests: list[str]
    """Categories of the current session first, then the snapshot's interests."""
    segment: str | None
    lifecycle_cohort: str | None
    session: SessionOut


@router.get(
    "/v1/users/{user_id}/profile",
    response_model=ProfileOut,
    # Details absent from the session (the store did not answer) stay absent, not null.
    response_model_exclude_unset=True,
    **scoped("serve"),
)
async def get_profile(
    user_id: Annotated[Id, Path(description="Your user id")], services: ServicesDep
) -> ProfileOut:
    """The user's features, top interests, segment, cohort and current session, read from the
    real-time store (one round trip, at most ``realtime_budget_ms``) with the latest snapshot
    as fallback."""
    key = services.pseudonymizer.user(user_id)
    body = await run_in_threadpool(services.online.profile, key, services.now_ms())
    return ProfileOut.model_validate({"user_id": user_id, **body})
