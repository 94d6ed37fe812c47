"""Recommendations: ``GET /v1/users/{user_id}/recommendations`` from the production model."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from tastebud.api.deps import ServicesDep, scoped
from tastebud.events.schema import Id

__all__ = ["RecommendationsOut", "router"]

router = APIRouter(tags=["recommendations"])


class RecommendedItem(BaseModel):
    """One recommended item."""

    item_id: str
    score: float
    """The model's score (comparable within one list only)."""


class RecommendationsOut(BaseModel):
    """A user's top items and the model version that ranked them."""

    user_id: str
    items: list[RecommendedItem]
    cold_start: bool
    """``true`` when the model does not know the user (its cold-start list answered)."""
    model: dict[str, Any]
    """``name``, ``version`` and ``artifact_id`` of the production model that answered."""


@router.get(
    "/v1/users/{user_id}/recommendations", response_model=RecommendationsOut, **scoped("serve")
)
async def get_recommendations(
    user_id: Annotated[Id, Path(description="Your user id")],
    services: ServicesDep,
    response: Response,
    k: Annotated[int, Query(ge=1, le=100, description="How many items")] = 10,
) -> RecommendationsOut:
    """The user's top ``k`` items from the production ``recommendations`` model, training
    items excluded. Answers ``503 model_not_ready`` until a version is promoted."""
    key = services.pseudonymizer.user(user_id)
    body = await run_in_threadpool(services.recommendations.recommend, key, k)
    m = body["model"]
    response.headers["X-Tastebud-Model"] = f"{m['name']}/v{m['version']}"
    return RecommendationsOut(user_id=user_id, **body)
