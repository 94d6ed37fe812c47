"""Personalization: recommendations, similar items, re-ranking and feedback."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Annotated, Literal

import orjson
from fastapi import APIRouter, Body, Path, Query, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from tastebud.api.deps import ServicesDep, scoped
from tastebud.catalog import SkillLevel
from tastebud.errors import ConsentRequired, InvalidInput
from tastebud.events.fields import Id
from tastebud.events.ingest import BatchResult
from tastebud.services import Services
from tastebud.serving import (
    ContentItem,
    Context,
    Exposure,
    ListRequest,
    Mode,
    Ranking,
    ReasonType,
    Recommendation,
    rank_content,
    similar_items,
)

__all__ = [
    "ContentIn",
    "ExposureOut",
    "FeedbackIn",
    "FeedbackOut",
    "ModelRefOut",
    "RECOMMENDATIONS_PATH",
    "RankIn",
    "RankModelOut",
    "RankedItemOut",
    "RankingOut",
    "ReasonOut",
    "RecommendationsAnswer",
    "RecommendationsOut",
    "RecommendationsQuery",
    "RecommendedItemOut",
    "SimilarOut",
    "feedback",
    "get_recommendations",
    "get_similar",
    "rank",
    "recommendations_answer",
    "router",
]

router = APIRouter(tags=["personalization"])
UserIdPath = Annotated[Id, Path(description="Your user id")]
Short = Annotated[str, Field(min_length=1, max_length=64)]


# -- response bodies --------------------------------------------------------------------------
# The answers are rendered by the serving layer's typed results (``to_json``) and serialised
# once by orjson; these models are their documented schema (``/openapi.json``), and
# tests/test_engine_parts.py validates real answers against them.


class ReasonOut(BaseModel):
    """Why an item is in the list: ``type`` and ``text``, and at most one detail naming what
    the reason refers to (absent details are left out, never ``null``)."""

    type: ReasonType
    """``because_you_watched`` (with ``item_id``), ``session_category``,
    ``trending_in_category``, ``new_in_category`` (with ``category``), ``popular_in_segment``
    (with ``segment``), ``popular_in_context`` (with ``device``, ``locale`` or ``daypart``),
    ``popular``, ``similar_to`` (with ``item_id``); in ``rank``: ``model``, ``interest`` (with
    ``category``), ``recent``, ``default``."""
    item_id: str | None = None
    category: str | None = None
    segment: str | None = None
    device: str | None = None
    locale: str | None = None
    daypart: str | None = None
    text: str


class RecommendedItemOut(BaseModel):
    """One recommended item."""

    item_id: str
    score: float
    """Relevance in [0, 1] within this list: 1 for the best item, 0 for the last (the scale of
    batch lists too; docs/serving.md, *Scores*)."""
    reason: ReasonOut


class ModelRefOut(BaseModel):
    """The production model version that ranked a list."""

    name: str
    version: int
    artifact_id: str
    """Content hash of the model artifact."""


class ExposureOut(BaseModel):
    """An experiment the user is in, and the variant they were served."""

    name: str
    variant: str


class RecommendationsOut(BaseModel):
    """A user's top items, how they were chosen and the model version that ranked them."""

    user_id: str
    items: list[RecommendedItemOut]
    mode: Mode
    """``personalized`` (the model knows the user), ``session`` (only a live session),
    ``cold_start`` (the best list for the user's segment and context)."""
    model: ModelRefOut
    degraded: bool
    """``true`` when the real-time store did not answer in time (no session blending)."""
    cached: bool
    list_id: str
    """Identifies this list in the ``impression`` event it was logged as."""
    experiments: list[ExposureOut] | None = None
    """The experiments the user is in here and their variants (absent when none)."""


class SimilarOut(BaseModel):
    """The items the production model relates most to one item."""

    item_id: str
    items: list[RecommendedItemOut]
    """Best first; ``score`` is the relation to the item over the best one's."""
    model: ModelRefOut
    experiments: list[ExposureOut] | None = None
    """With ``user_id``: the experiments that user is in here (absent when none)."""


class RankedItemOut(BaseModel):
    """One re-ordered piece of content."""

    id: str
    score: float
    """Relevance in [0, 1]."""
    reason: ReasonOut
    skill_level: str | None
    """The level of the chosen text variant (``null`` without variants)."""
    text: str | None
    """The text variant for the user's skill level."""


class RankModelOut(BaseModel):
    """The recommendations model version that scored known items."""

    name: str
    version: int


class RankingOut(BaseModel):
    """Content re-ordered for the user, best first."""

    user_id: str
    items: list[RankedItemOut]
    suppressed: list[str]
    """Items left out: the user marked them ``not_interested`` or ``dislike``."""
    skill_level: str | None
    """The skill level used: the request's, else the user's stored attribute."""
    degraded: bool
    """``true`` when the real-time store did not answer in time."""
    model: RankModelOut | None
    """``null`` before any recommendations model is in production."""
    experiments: list[ExposureOut] | None = None
    """The experiments the user is in here and their variants (absent when none)."""


class FeedbackOut(BaseModel):
    """Feedback recorded."""

    status: Literal["recorded"]
    item_id: str
    kind: Literal["like", "dislike", "not_interested"]


def _experiments_header(exposures: tuple[Exposure, ...]) -> dict[str, str]:
    """``X-Tastebud-Experiments: name=variant, ...`` for an exposed user (else nothing)."""
    if not exposures:
        return {}
    return {"X-Tastebud-Experiments": ", ".join(f"{e.experiment}={e.variant}" for e in exposures)}


def _json(user_id: str, result: Recommendation | Ranking, headers: dict[str, str]) -> Response:
    return Response(
        orjson.dumps({"user_id": user_id, **result.to_json()}),
        media_type="application/json",
        headers=headers,
    )


class RecommendationsQuery(BaseModel):
    """The query of ``GET /v1/users/{user_id}/recommendations`` (validated the same way by the
    route and by its fast path, :mod:`tastebud.api.fastpath`)."""

    k: int = Field(default=10, ge=1, le=100, description="How many items")
    category: str | None = Field(
        default=None, min_length=1, max_length=128, description="Only items of this category"
    )
    exclude: str | None = Field(
        default=None,
        max_length=8192,
        pattern=r"^[^,]+(,[^,]+)*$",
        description="Comma-separated item ids to leave out",
    )
    device: str | None = Field(default=None, max_length=32, description="mobile, desktop...")
    hour: int | None = Field(default=None, ge=0, le=23, description="The user's local hour")
    locale: str | None = Field(default=None, max_length=35, description="e.g. de-DE")
    network: str | None = Field(default=None, max_length=16, description="e.g. 4g, wifi")
    anonymous: bool = Field(
        default=False,
        description="The id is an anonymous (device/cookie) id rather than a user id; once "
        "identified (POST /v1/users/{user_id}/aliases), the user keeps the experiment "
        "variants the anonymous visitor had",
    )

    def list_request(self) -> ListRequest:
        """What the engine is asked for."""
        return ListRequest(
            self.k,
            self.category,
            tuple(self.exclude.split(",")) if self.exclude else (),
            Context(device=self.device, hour=self.hour, locale=self.locale, network=self.network),
        )


@dataclass(frozen=True, slots=True)
class RecommendationsAnswer:
    """The body and headers of a recommendations answer (status 200, JSON)."""

    body: bytes
    headers: dict[str, str]

    def response(self) -> Response:
        """As a Starlette response (the route's; the fast path sends the same bytes itself)."""
        return Response(self.body, media_type="application/json", headers=self.headers)


async def recommendations_answer(
    services: Services, user_id: str, query: RecommendationsQuery
) -> RecommendationsAnswer:
    """The answer of ``GET /v1/users/{user_id}/recommendations`` once the caller is
    authenticated and the request valid (the route and its fast path both end here).

    Raises:
        ModelNotReady: no version has been promoted yet.
    """
    p = services.pseudonymizer
    key = p.anonymous(user_id) if query.anonymous else p.user(user_id)
    # On the event loop: the real-time state is awaited (never blocking the loop, at most the
    # budget); the rest is well under a millisecond of CPU, cheaper here than two thread
    # hand-offs.
    answer = await services.engine.recommend_async(
        key, query.list_request(), user_id=user_id, anonymous=query.anonymous
    )
    m = answer.model
    headers = {
        "X-Tastebud-Model": f"{m.name}/v{m.version}",
        "X-Tastebud-Cache": "hit" if answer.cached else "miss",
    }
    if answer.degraded:
        headers["X-Tastebud-Degraded"] = "realtime"
    headers.update(_experiments_header(answer.exposures))
    return RecommendationsAnswer(orjson.dumps({"user_id": user_id, **answer.to_json()}), headers)


# -- routes -----------------------------------------------------------------------------------
RECOMMENDATIONS_PATH = "/v1/users/{user_id}/recommendations"


@router.get(RECOMMENDATIONS_PATH, response_model=RecommendationsOut, **scoped("serve"))
async def get_recommendations(
    user_id: UserIdPath,
    services: ServicesDep,
    query: Annotated[RecommendationsQuery, Query()],
) -> Response:
    """The user's top ``k`` items: the production model blended with the live session, without
    training items, consumed, not-interested or hidden items, with a reason each. Answers
    ``503 model_not_ready`` until a version is promoted; when the real-time store does not
    answer within ``realtime_budget_ms`` it answers from the model alone with
    ``X-Tastebud-Degraded: realtime``."""
    return (await recommendations_answer(services, user_id, query)).response()


@router.get("/v1/items/{item_id}/similar", response_model=SimilarOut, **scoped("serve"))
async def get_similar(
    item_id: Annotated[Id, Path(description="A catalogue item id")],
    services: ServicesDep,
    k: Annotated[int, Query(ge=1, le=100)] = 10,
    user_id: Annotated[
        Id | None,
        Query(description="The user who asks: experiments on this surface apply to them"),
    ] = None,
) -> Response:
    """Items the production model relates most to this one (hidden items left out). With
    ``user_id``, a user in an experiment on the ``similar`` surface gets their variant's
    model."""
    key = None if user_id is None else services.pseudonymizer.user(user_id)
    result = await run_in_threadpool(
        partial(similar_items, user_key=key, user_id=user_id), services.engine, item_id, k
    )
    return Response(
        orjson.dumps(result.to_json()),
        media_type="application/json",
        headers=_experiments_header(result.exposures),
    )


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


@router.post("/v1/users/{user_id}/rank", response_model=RankingOut, **scoped("serve"))
async def rank(user_id: UserIdPath, body: RankIn, services: ServicesDep) -> Response:
    """Re-order content for the user: relevance in [0, 1] (the model's where it knows the item,
    else category affinity and recency), the reason, and the text variant for the user's skill
    level (``skill_level`` user attribute, or the request's)."""
    key = services.pseudonymizer.user(user_id)
    content = [
        ContentItem(c.id, c.category, c.type, _ms(c.created_at), c.variants) for c in body.items
    ]

    def run() -> Ranking:
        skill: str | None = body.skill_level
        if skill is None:
            row = services.catalog.users.get(key)
            stored = None if row is None else row["attributes"].get("skill_level")
            skill = stored if isinstance(stored, str) else None
        return rank_content(services.engine, key, content, skill=skill, user_id=user_id)

    result = await run_in_threadpool(run)
    return _json(user_id, result, _experiments_header(result.exposures))


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


@router.post(
    "/v1/users/{user_id}/feedback",
    status_code=202,
    response_model=FeedbackOut,
    **scoped("serve"),
)
async def feedback(
    user_id: UserIdPath,
    services: ServicesDep,
    body: Annotated[FeedbackIn, Body()],
) -> FeedbackOut:
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

    def run() -> BatchResult:
        result = services.ingestor.ingest([event])
        if result.accepted:
            # Stored; applied by the ingest path as well (this also covers a user who
            # withdrew personalization consent: what they never want to see is kept).
            services.engine.feedback(services.pseudonymizer.user(user_id), body.item_id, body.kind)
        return result

    result = await run_in_threadpool(run)
    if not result.accepted and not result.duplicates:  # a retry of recorded feedback is fine
        outcome = result.results[0]
        reason = outcome.reason or "the feedback was rejected"
        if outcome.code == "consent_required":
            raise ConsentRequired(reason)
        raise InvalidInput(reason)
    return FeedbackOut(status="recorded", item_id=body.item_id, kind=body.kind)
