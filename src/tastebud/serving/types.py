"""The typed values the engine's parts take and return: requests, reasons, lists and answers.

Every result is a frozen dataclass; ``to_json()`` gives the JSON object the API answers with
(the shapes of docs/serving.md and of the Python client), keys in their documented order and
absent details left out rather than ``null``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from tastebud.features.daypart import daypart
from tastebud.serving.hotswap import Served

__all__ = [
    "Context",
    "Exposure",
    "ListRequest",
    "Mode",
    "ModelRef",
    "RankedItem",
    "Ranking",
    "Reason",
    "ReasonType",
    "Recommendation",
    "RecommendationList",
    "RecommendedItem",
    "SimilarItems",
    "render_items",
]


class Mode(StrEnum):
    """How a list was made."""

    PERSONALIZED = "personalized"
    """The model knows the user (blended with the live session)."""
    SESSION = "session"
    """Only a live session (or liked items): what the model relates to them."""
    COLD_START = "cold_start"
    """Neither: the best cold-start list for the user's segment and context."""


class ReasonType(StrEnum):
    """Why an item is in a list (``reason.type``)."""

    BECAUSE_YOU_WATCHED = "because_you_watched"
    SESSION_CATEGORY = "session_category"
    TRENDING_IN_CATEGORY = "trending_in_category"
    NEW_IN_CATEGORY = "new_in_category"
    POPULAR_IN_SEGMENT = "popular_in_segment"
    POPULAR_IN_CONTEXT = "popular_in_context"
    POPULAR = "popular"
    SIMILAR_TO = "similar_to"
    MODEL = "model"
    """``rank``: scored by the recommendations model."""
    INTEREST = "interest"
    """``rank``: the user's interest in the item's category."""
    RECENT = "recent"
    """``rank``: recently published."""
    DEFAULT = "default"
    """``rank``: none of the above."""


@dataclass(frozen=True, slots=True)
class Context:
    """Request context: selects the cold-start list and is recorded with the impression."""

    device: str | None = None
    hour: int | None = None
    locale: str | None = None
    network: str | None = None

    def key(self) -> tuple[str | None, str | None, str | None, str | None]:
        """What selects a list: the hour counts by its part of the day."""
        return (
            self.device,
            None if self.hour is None else daypart(self.hour),
            self.locale,
            self.network,
        )


@dataclass(frozen=True, slots=True)
class ListRequest:
    """What a caller asks for: ``k`` items, optionally of one ``category``, none of ``exclude``."""

    k: int
    category: str | None = None
    exclude: tuple[str, ...] = ()
    context: Context = field(default_factory=Context)

    def key(self) -> tuple[object, ...]:
        """The request as a cache key (requests with the same key get the same list)."""
        return (self.k, self.category, self.exclude, self.context.key())


@dataclass(frozen=True, slots=True)
class Reason:
    """Why an item is in a list, in words (``text``) and as data (at most one detail)."""

    type: ReasonType
    text: str
    item_id: str | None = None
    """The item it refers to (``because_you_watched``, ``similar_to``)."""
    category: str | None = None
    """The category it refers to (``*_category``, ``new_in_category``, ``interest``)."""
    segment: str | None = None
    """The segment whose list was used (``popular_in_segment``)."""
    device: str | None = None
    """The device whose list was used (``popular_in_context``)."""
    locale: str | None = None
    """The locale whose list was used (``popular_in_context``)."""
    daypart: str | None = None
    """The part of the day whose list was used (``popular_in_context``)."""

    def to_json(self) -> dict[str, object]:
        """``{"type", <detail>..., "text"}``; details that are ``None`` are left out."""
        out: dict[str, object] = {"type": self.type.value}
        # Spelled out rather than looped over: this runs for every item of every answer.
        if self.item_id is not None:
            out["item_id"] = self.item_id
        if self.category is not None:
            out["category"] = self.category
        if self.segment is not None:
            out["segment"] = self.segment
        if self.device is not None:
            out["device"] = self.device
        if self.locale is not None:
            out["locale"] = self.locale
        if self.daypart is not None:
            out["daypart"] = self.daypart
        out["text"] = self.text
        return out


@dataclass(frozen=True, slots=True)
class RecommendedItem:
    """One item of a list."""

    item_id: str
    score: float
    """Relevance in [0, 1] within the list (docs/serving.md, *Scores*)."""
    reason: Reason

    def to_json(self) -> dict[str, object]:
        """``{"item_id", "score", "reason"}``."""
        return {"item_id": self.item_id, "score": self.score, "reason": self.reason.to_json()}


@dataclass(frozen=True, slots=True)
class ModelRef:
    """The production model version behind an answer."""

    name: str
    version: int
    artifact_id: str

    @classmethod
    def of(cls, served: Served) -> ModelRef:
        """The reference of a served model."""
        return cls(served.name, served.version, served.artifact_id)

    def to_json(self) -> dict[str, object]:
        """``{"name", "version", "artifact_id"}``."""
        return {"name": self.name, "version": self.version, "artifact_id": self.artifact_id}


def render_items(items: tuple[RecommendedItem, ...]) -> list[dict[str, object]]:
    """The JSON of a list's items; a reason shared by several items (a cold-start list's) is
    rendered once."""
    reasons: dict[int, dict[str, object]] = {}  # by id(): every reason is alive meanwhile
    out: list[dict[str, object]] = []
    for item in items:
        reason = item.reason
        rendered = reasons.get(id(reason))
        if rendered is None:
            rendered = reasons[id(reason)] = reason.to_json()
        out.append({"item_id": item.item_id, "score": item.score, "reason": rendered})
    return out


@dataclass(frozen=True, slots=True)
class RecommendationList:
    """A computed list: what the engine's cache keeps.

    Its items' JSON is rendered once, when the list is made, and shared (read-only) by every
    answer served from it (a cache hit costs no rendering).
    """

    items: tuple[RecommendedItem, ...]
    mode: Mode
    model: ModelRef
    items_json: tuple[dict[str, object], ...] = field(init=False, repr=False, compare=False)
    """``items`` as JSON objects (never modified)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "items_json", tuple(render_items(self.items)))


@dataclass(frozen=True, slots=True)
class Exposure:
    """One experiment a user was exposed to in an answer, and their variant."""

    experiment: str
    variant: str

    def to_json(self) -> dict[str, str]:
        """``{"name", "variant"}``."""
        return {"name": self.experiment, "variant": self.variant}


@dataclass(frozen=True, slots=True)
class Recommendation:
    """One answer to a recommendations request."""

    ranked: RecommendationList
    """The list (computed for this request or taken from the cache)."""
    list_id: str
    """Identifies this answer in the ``impression`` event it was logged as."""
    degraded: bool
    """The real-time store did not answer in time: no session blending."""
    cached: bool
    """The list came from the engine's cache."""
    exposures: tuple[Exposure, ...] = ()
    """The experiments the user is in on this surface, and their variants."""

    @property
    def items(self) -> tuple[RecommendedItem, ...]:
        """The items, best first."""
        return self.ranked.items

    @property
    def mode(self) -> Mode:
        """How the list was made."""
        return self.ranked.mode

    @property
    def model(self) -> ModelRef:
        """The model version that ranked it."""
        return self.ranked.model

    def to_json(self) -> dict[str, object]:
        """``{"items", "mode", "model", "degraded", "cached", "list_id"}`` and, for a user in
        experiments, ``"experiments": [{"name", "variant"}]`` (the route adds ``user_id``)."""
        lst = self.ranked
        out: dict[str, object] = {
            "items": list(lst.items_json),
            "mode": lst.mode.value,
            "model": lst.model.to_json(),
            "degraded": self.degraded,
            "cached": self.cached,
            "list_id": self.list_id,
        }
        if self.exposures:
            out["experiments"] = [e.to_json() for e in self.exposures]
        return out


@dataclass(frozen=True, slots=True)
class SimilarItems:
    """The items the production model relates most to one item."""

    item_id: str
    items: tuple[RecommendedItem, ...]
    model: ModelRef
    exposures: tuple[Exposure, ...] = ()
    """The experiments the asking user is in on this surface."""

    def to_json(self) -> dict[str, object]:
        """``{"item_id", "items", "model"}`` (and ``experiments`` for an exposed user)."""
        out: dict[str, object] = {
            "item_id": self.item_id,
            "items": render_items(self.items),
            "model": self.model.to_json(),
        }
        if self.exposures:
            out["experiments"] = [e.to_json() for e in self.exposures]
        return out


@dataclass(frozen=True, slots=True)
class RankedItem:
    """One piece of re-ordered content."""

    id: str
    score: float
    """Relevance in [0, 1]."""
    reason: Reason
    skill_level: str | None
    """The level of the chosen text variant (``None`` without variants)."""
    text: str | None
    """The text variant for the user's skill level."""

    def to_json(self) -> dict[str, object]:
        """``{"id", "score", "reason", "skill_level", "text"}`` (``null`` where absent)."""
        return {
            "id": self.id,
            "score": self.score,
            "reason": self.reason.to_json(),
            "skill_level": self.skill_level,
            "text": self.text,
        }


@dataclass(frozen=True, slots=True)
class Ranking:
    """Content re-ordered for one user, best first."""

    items: tuple[RankedItem, ...]
    suppressed: tuple[str, ...]
    """Items left out: the user marked them ``not_interested`` or ``dislike``."""
    skill_level: str | None
    """The skill level used."""
    degraded: bool
    """The real-time store did not answer in time."""
    model: ModelRef | None
    """The recommendations model that scored known items, if one is in production."""
    exposures: tuple[Exposure, ...] = ()
    """The experiments the user is in on this surface."""

    def to_json(self) -> dict[str, object]:
        """``{"items", "suppressed", "skill_level", "degraded", "model"}`` (and
        ``experiments`` for an exposed user); ``model`` names the version only
        (``{"name", "version"}``) or is ``null``."""
        model = self.model
        out: dict[str, object] = {
            "items": [i.to_json() for i in self.items],
            "suppressed": list(self.suppressed),
            "skill_level": self.skill_level,
            "degraded": self.degraded,
            "model": None if model is None else {"name": model.name, "version": model.version},
        }
        if self.exposures:
            out["experiments"] = [e.to_json() for e in self.exposures]
        return out
