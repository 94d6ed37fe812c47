"""Personalization: recommendations, similar items, re-ranking and feedback."""

from __future__ import annotations

import time
import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Body, Path, Query, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from tastebud.api.deps import ServicesDep, scoped
from tastebud.catalog import SkillLevel
from tastebud.errors import ConsentRequired, InvalidInput
from tastebud.events.schema import Id
from tastebud.serving import ContentItem, Context, rank_content, similar_items

__all__ = ["router"]

router = APIRouter(tags=["personalization"])
UserIdPath = Annotated[Id, Path(description="Your user id")]
Short = Annotated[str, Field(min_length=1, max_length=64)]


class Reason(BaseModel):
    """Why an item is in the list."""

    model_config = ConfigDict(extra="allow")
    type: str
    """``because_you_watched`` (with ``item_id``), ``session_category``,
    ``trending_in_category``, ``new_in_category`` (with ``category``), ``popular_in_segment``,
    ``popular_in_context``, ``popular``, ``similar_to``."""
    text: str


class RecommendedItem(BaseModel):
    """One recommended item."""

    item_id: str
    score: float
    """Relevance in [0, 1] within this list: 1 for the best item, 0 for the last (the scale of
    batch lists too; docs/serving.md, *Scores*)."""
    reason: Reason


class RecommendationsOut(BaseModel):
    """A user's top items, how they were chosen and the model version that ranked them."""

    user_id: str
    items: list[RecommendedItem]
    mode: Literal["personalized", "session", "cold_start"]
    """``personalized`` (the model knows the user), ``session`` (only a live session),
    ``cold_start`` (the best list for the user's segment and context)."""
    model: dict[str, Any]
    """``name``, ``version`` and ``artifact_id`` of the production model."""
    list_id: str
    """Identifies this list in the ``impression`` event it was logged as."""
    degraded: bool
    """``true`` when the real-time store did not answer (no session blending)."""
    cached: bool


@router.get(
    "/v1/users/{user_id}/recommendations", response_model=RecommendationsOut, **scoped("serve")
)
async def get_recommendations(
    user_id: UserIdPath,
    services: ServicesDep,
    k: Annotated[int, Query(ge=1, le=100, description="How many items")] = 10,
    category: Annotated[
        str | None, Query(min_length=1, max_length=128, description="Only items of this category")
    ] = None,
    exclude: Annotated[
        str | None,
        Query(
            max_length=8192,
            pattern=r"^[^,]+(,[^,]+)*$",
            description="Comma-separated item ids to leave out",
        ),
    ] = None,
    device: Annotated[str | None, Query(max_length=32, description="mobile, desktop...")] = None,
    hour: Annotated[int | None, Query(ge=0, le=23, description="The user's local hour")] = None,
    locale: Annotated[str | None, Query(max_length=35, description="e.g. de-DE")] = None,
    network: Annotated[str | None, Query(max_length=16, description="e.g. 4g, wifi")] = None,
) -> RecommendationsOut:
    """The user's top ``k`` items: the production model blended with the live session, without
    training items, consumed, not-interested or hidden items, with a reason each. Answers
    ``503 model_not_ready`` until a version is promoted; with the real-time store down it
    answers from the model alone with ``X-Tastebud-Degraded: realtime``."""
    key = services.pseudonymizer.user(user_id)
    ctx = Context(device=device, hour=hour, locale=locale, network=network)
    skip = tuple(exclude.split(",")) if exclude else ()
    # Computed on the event loop: about a millisecond of CPU and one Redis round trip (with a
    # short timeout), cheaper than two thread hand-offs; each API process serves one core.
    body = services.engine.recommend(
        key, k, category=category, exclude=skip, context=ctx, user_id=user_id
    )
    m = body["model"]
    headers = {
        "X-Tastebud-Model": f"{m['name']}/v{m['version']}",
        "X-Tastebud-Cache": "hit" if body["cached"] else "miss",
    }
    if body["degraded"]:
        headers["X-Tastebud-Degraded"] = "realtime"
    # The body is built by the engine in the documented shape: serialised once, not validated
    # again field by field.
    content = orjson.dumps({"user_id": user_id, **body})
    return Response(content, media_type="application/json", headers=headers)  # type: ignore[return-value]


@router.get("/v1/items/{item_id}/similar", **scoped("serve"))
async def get_similar(
    item_id: Annotated[Id, Path(description="A catalogue item id")],
    services: ServicesDep,
    k: Annotated[int, Query(ge=1, le=100)] = 10,
) -> dict[str, Any]:
    """Items the production model relates most to this one (hidden items left out)."""
    return await run_in_threadpool(similar_items, services.engine, item_id, k)


class ContentIn(BaseModel):
    """One piece of content to rank."""

    model_config = ConfigDict(extra="forbid")
    id: Id
    category: str | None = Field(default=None, max_length=128)
    type: str | None = Field(default=None, max_length=64)
    created_at: datetime | float | None = Field(
        default=None, description="ISO 8601 or seconds since the epoch"
    )
    variants: dict[Short, Annotated[str, Field(max_length=20_000)]] | None = Field(
        default=None,
        max_length=8,
        description="Text by skill level: beginner, intermediate, expert (advanced)",
    )


class RankIn(BaseModel):
    """Content to re-order for the user."""

    model_config = ConfigDict(extra="forbid")
    items: list[ContentIn] = Field(min_length=1, max_length=200)
    skill_level: SkillLevel | None = Field(
        default=None,
        description="Overrides the user's stored skill_level (the values PUT /v1/users takes)",
    )


def _ms(value: datetime | float | None) -> int | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise InvalidInput("created_at needs a time zone (e.g. 2026-11-26T10:00:00Z)")
        return int(value.timestamp() * 1000)
    return int(value * 1000)


@router.post("/v1/users/{user_id}/rank", **scoped("serve"))
async def rank(user_id: UserIdPath, body: RankIn, services: ServicesDep) -> dict[str, Any]:
    """Re-order content for the user: relevance in [0, 1] (the model's where it knows the item,
    else category affinity and recency), the reason, and the text variant for the user's skill
    level (``skill_level`` user attribute, or the request's)."""
    key = services.pseudonymizer.user(user_id)
    content = [
        ContentItem(c.id, c.category, c.type, _ms(c.created_at), c.variants) for c in body.items
    ]

    def run() -> dict[str, Any]:
        skill = body.skill_level
        if skill is None:
            row = services.store.get_user(key)
            skill = (row or {}).get("attributes", {}).get("skill_level")
        return rank_content(services.engine, key, content, skill=skill)

    return {"user_id": user_id, **await run_in_threadpool(run)}


class FeedbackIn(BaseModel):
    """Explicit feedback on an item."""

    model_config = ConfigDict(extra="forbid")
    item_id: Id
    kind: Literal["like", "dislike", "not_interested"]
    list_id: str | None = Field(
        default=None, max_length=64, description="The list it was shown in (for CTR analysis)"
    )
    event_id: Id | None = Field(
        default=None,
        description="Idempotency key: a retry with the same id stores nothing twice (the "
        "Python client sends one per call)",
    )


@router.post("/v1/users/{user_id}/feedback", status_code=202, **scoped("serve"))
async def feedback(
    user_id: UserIdPath,
    services: ServicesDep,
    body: Annotated[FeedbackIn, Body()],
) -> dict[str, Any]:
    """Record ``like``, ``dislike`` or ``not_interested``: stored as a ``feedback`` event and
    applied to the user's real-time state at once (a not-interested or disliked item never
    comes back). With an ``event_id``, a retry stores nothing twice."""
    event = {
        "event_id": f"fb-{body.event_id or uuid.uuid4().hex}",
        "event_type": "feedback",
        "user_id": user_id,
        "timestamp": time.time(),
        "data": {
            "item_id": body.item_id,
            "kind": body.kind,
            **({"list_id": body.list_id} if body.list_id else {}),
        },
    }

    def run() -> Any:
        result = services.ingestor.ingest([event])
        if result.accepted:
            key = services.pseudonymizer.user(user_id)
            try:
                services.realtime.set_feedback(key, body.item_id, body.kind)
            except Exception:  # noqa: BLE001 - stored; the ingest path applies it as well
                pass
        return result

    result = await run_in_threadpool(run)
    if not result.accepted and not result.duplicates:  # a retry of recorded feedback is fine
        outcome = result.results[0]
        reason = outcome.reason or "the feedback was rejected"
        if outcome.code == "consent_required":
            raise ConsentRequired(reason)
        raise InvalidInput(reason)
    return {"status": "recorded", "item_id": body.item_id, "kind": body.kind}
