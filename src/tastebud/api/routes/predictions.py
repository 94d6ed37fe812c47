"""Behaviour predictions: ``GET /v1/users/{user_id}/predictions``."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from tastebud.api.deps import ServicesDep, scoped
from tastebud.events.fields import Id

__all__ = [
    "PredictionReason",
    "PredictionsOut",
    "PredictorRef",
    "get_predictions",
    "router",
]

router = APIRouter(tags=["users"])


class PredictorRef(BaseModel):
    """The predictor version behind one probability."""

    artifact_id: str
    """Content hash of the model artifact."""
    version: int
    """The registry version serving it (``production``)."""
    model: str
    """The family and regularisation chosen at training."""


class PredictionReason(BaseModel):
    """One feature that moved a prediction."""

    feature: str
    direction: Literal["increases", "decreases"]
    contribution: float
    """Its contribution to the log-odds."""


class PredictionsOut(BaseModel):
    """Calibrated probabilities with the features that moved them most."""

    user_id: str
    churn_probability: float | None
    """Probability that this active user has no event in the churn window (default 30 days);
    ``null`` when no churn model has been trained."""
    conversion_probability: float | None
    """Probability of a ``conversion`` event in the conversion window (default 7 days)."""
    models: dict[str, PredictorRef]
    """Per trained target (``churn``, ``conversion``)."""
    reasons: dict[str, list[PredictionReason]]
    """Per trained target: the top 3 features by contribution to the log-odds."""


@router.get(
    "/v1/users/{user_id}/predictions",
    response_model=PredictionsOut,
    responses={409: {"description": "The user opted out of personalization (`opted_out`)"}},
    **scoped("serve"),
)
async def get_predictions(
    user_id: Annotated[Id, Path(description="Your user id")], services: ServicesDep
) -> PredictionsOut:
    """Churn and conversion probabilities from the trained predictors and the user's latest
    features, with the top three reasons for each. Predictions are profiling: a user who opted
    out of personalization gets none (``409 opted_out``)."""
    key = services.pseudonymizer.user(user_id)
    body = await run_in_threadpool(services.predict, key)
    return PredictionsOut(user_id=user_id, **body)
