"""The typed answers of the read methods, mirroring the server's response bodies
(``api/routes/*.py``). Unknown fields are ignored, so a newer server does not break an older
client; a reason keeps every field it was sent (``model_extra``)."""

from __future__ import annotations

from typing import Any, TypedDict

from pydantic import BaseModel, ConfigDict

__all__ = [
    "ErasureReceipt",
    "EventReceipt",
    "FeedbackReceipt",
    "ModelRef",
    "PredictionReason",
    "Predictions",
    "PredictorRef",
    "Profile",
    "RankedItem",
    "Ranking",
    "Reason",
    "Recommendations",
    "RecommendedItem",
    "SimilarItems",
]


class _Answer(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class EventReceipt(TypedDict):
    """The answer to ``track`` (``POST /v1/events``)."""

    event_id: str
    """The id the event is stored under: its own, or the server's hash of its content."""
    status: str
    """``accepted``, or ``duplicate`` when the server already held it."""


class Reason(_Answer):
    """Why an item is in a list, in words (``text``) and as data."""

    model_config = ConfigDict(frozen=True, extra="allow")
    type: str
    """``because_you_watched``, ``session_category``, ``trending_in_category``, ``popular``,
    ``similar_to``, ``model``, ``interest``, ``recent``... (docs/serving.md)."""
    text: str
    item_id: str | None = None
    """The item the reason refers to (``because_you_watched``, ``similar_to``)."""
    category: str | None = None
    """The category the reason refers to (``*_in_category``, ``interest``)."""


class ModelRef(_Answer):
    """The model version that ranked a list."""

    name: str
    version: int
    artifact_id: str | None = None
    """Content hash of the model artifact."""


class RecommendedItem(_Answer):
    """One item of a list."""

    item_id: str
    score: float
    """Relevance in [0, 1] within this list (1: the best)."""
    reason: Reason


class Recommendations(_Answer):
    """``GET /v1/users/{user_id}/recommendations``."""

    user_id: str
    items: tuple[RecommendedItem, ...]
    mode: str
    """``personalized`` (the model knows the user), ``session`` (only a live session) or
    ``cold_start`` (the best list for the user's segment and context)."""
    model: ModelRef
    list_id: str
    """Identifies this list in the ``impression`` event it was logged as; pass it to
    ``feedback``."""
    degraded: bool
    """The real-time store did not answer (no session blending)."""
    cached: bool


class SimilarItems(_Answer):
    """``GET /v1/items/{item_id}/similar``."""

    item_id: str
    items: tuple[RecommendedItem, ...]
    model: ModelRef


class RankedItem(_Answer):
    """One re-ordered piece of content."""

    id: str
    score: float
    """Relevance in [0, 1]."""
    reason: Reason
    skill_level: str | None = None
    """The level of the chosen text variant, if the content had variants."""
    text: str | None = None
    """The text variant for the user's skill level."""


class Ranking(_Answer):
    """``POST /v1/users/{user_id}/rank``: the content, best first."""

    user_id: str
    items: tuple[RankedItem, ...]
    skill_level: str | None = None
    """The skill level used: the request's, else the user's stored attribute."""
    degraded: bool = False
    model: ModelRef | None = None
    """The recommendations model that scored known items, if one is in production."""


class FeedbackReceipt(_Answer):
    """``POST /v1/users/{user_id}/feedback``."""

    status: str
    """``recorded``."""
    item_id: str
    kind: str


class Profile(_Answer):
    """``GET /v1/users/{user_id}/profile``: what Tastebud knows about a user right now."""

    user_id: str
    features: dict[str, Any]
    """Latest feature values (``tastebud features list`` documents each)."""
    feature_source: str
    """``realtime``, ``snapshot`` or ``none``."""
    top_interests: tuple[str, ...]
    segment: str | None = None
    lifecycle_cohort: str | None = None
    session: dict[str, Any]
    """``active``, ``events``, ``categories``, ``recent_actions``, ``consumed`` (``available``
    is false when the real-time store does not answer)."""


class PredictionReason(_Answer):
    """One feature that moved a prediction."""

    feature: str
    direction: str
    """``increases`` or ``decreases``."""
    contribution: float
    """Its contribution to the log-odds."""


class PredictorRef(_Answer):
    """The predictor version behind a probability."""

    artifact_id: str
    version: int | None = None
    model: str | None = None
    """The family and regularisation chosen at training."""


class Predictions(_Answer):
    """``GET /v1/users/{user_id}/predictions``: calibrated probabilities with reasons."""

    user_id: str
    churn_probability: float | None = None
    """``None`` when no churn model is in production."""
    conversion_probability: float | None = None
    """``None`` when no conversion model is in production."""
    models: dict[str, PredictorRef] = {}
    """Per target (``churn``, ``conversion``)."""
    reasons: dict[str, tuple[PredictionReason, ...]] = {}
    """Per target: the top three features by contribution."""


class ErasureReceipt(_Answer):
    """``DELETE /v1/users/{user_id}``: what was erased, per store."""

    request_id: str
    erased_ms: int
    """When (ms since the epoch); events from before it are refused from now on."""
    stores: dict[str, int]
    """Rows or entries removed per store."""
    total: int
    seconds: float
