"""The typed answers of the read methods, mirroring the server's response bodies
(``api/routes/*.py``). Unknown fields are ignored, so a newer server does not break an older
client; a reason keeps every field it was sent (``model_extra``)."""

from __future__ import annotations

from typing import NotRequired

from pydantic import BaseModel, ConfigDict, JsonValue, with_config

# pydantic validates these: on Python 3.11 it needs typing_extensions' TypedDict.
from typing_extensions import TypedDict

__all__ = [
    "ErasureReceipt",
    "EventBatchAnswer",
    "EventOutcome",
    "EventReceipt",
    "Exposure",
    "FeedbackReceipt",
    "ItemBatchAnswer",
    "ItemOutcome",
    "ModelRef",
    "PredictionReason",
    "Predictions",
    "PredictorRef",
    "Profile",
    "RankedItem",
    "Ranking",
    "Reason",
    "RecentAction",
    "Recommendations",
    "RecommendedItem",
    "Session",
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


class Exposure(_Answer):
    """An experiment a user is in, and their variant (docs/experiments.md)."""

    name: str
    variant: str


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
    experiments: tuple[Exposure, ...] = ()
    """The experiments the user is in here, and the variant they were served."""


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


# Plain dicts rather than models where the answer has always been read as a dict: a TypedDict
# types the keys and keeps ``session["active"]`` working. Unknown keys are kept (extra="allow").


@with_config(ConfigDict(extra="allow"))
class EventOutcome(TypedDict):
    """One event's result in ``POST /v1/events/batch``."""

    event_id: str | None
    status: str
    """``accepted``, ``duplicate`` or ``rejected``."""
    reason: NotRequired[str | None]
    """Every problem of a rejected event, in one line."""
    code: NotRequired[str | None]
    """Why a rejected event was refused: ``invalid_event``, ``consent_required``..."""
    details: NotRequired[list[dict[str, str]] | None]
    """For a rejected event: one ``{"field", "message"}`` per problem."""


@with_config(ConfigDict(extra="allow"))
class EventBatchAnswer(TypedDict):
    """``POST /v1/events/batch``: counts and one result per event, in order."""

    accepted: int
    duplicates: int
    rejected: int
    results: list[EventOutcome]


@with_config(ConfigDict(extra="allow"))
class ItemOutcome(TypedDict):
    """One item's result in ``POST /v1/items/batch``."""

    item_id: NotRequired[str | None]
    status: str
    """``created``, ``updated`` or ``rejected``."""
    reason: NotRequired[str | None]


@with_config(ConfigDict(extra="allow"))
class ItemBatchAnswer(TypedDict):
    """``POST /v1/items/batch``: counts and one result per entry."""

    created: int
    updated: int
    rejected: int
    results: list[ItemOutcome]


@with_config(ConfigDict(extra="allow"))
class RecentAction(TypedDict):
    """One action of the live session."""

    type: str
    """The event type."""
    item_id: str | None
    category: str | None
    at_ms: int
    """Event time, ms since the epoch."""


@with_config(ConfigDict(extra="allow"))
class Session(TypedDict, total=False):
    """The live session of a :class:`Profile` (every key optional: an older or newer server may
    send fewer)."""

    available: bool
    """``False`` when the real-time store did not answer (then nothing else is known)."""
    active: bool
    """An action within the last 30 minutes."""
    events: int
    """Actions in the current session."""
    categories: dict[str, int]
    recent_actions: list[RecentAction]
    """The ten most recent actions, newest first."""
    consumed: list[str]
    """Recently consumed items, newest first (absent when the store did not answer)."""
    feedback: dict[str, str]
    """Item -> ``like``, ``dislike`` or ``not_interested``."""


class Profile(_Answer):
    """``GET /v1/users/{user_id}/profile``: what Tastebud knows about a user right now."""

    user_id: str
    features: dict[str, JsonValue]
    """Latest feature values (``tastebud features list`` documents each)."""
    feature_source: str
    """``realtime``, ``snapshot`` or ``none``."""
    top_interests: tuple[str, ...]
    segment: str | None = None
    lifecycle_cohort: str | None = None
    session: Session
    """The live session (``available`` is false when the real-time store does not answer)."""


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
