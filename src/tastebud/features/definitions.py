"""Every feature, defined once: name, version, type, meaning, owner, lifecycle.

Changing how a feature is computed means a new ``version``; snapshots record the versions they
were built with, so old snapshots stay readable and comparable.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = [
    "Entity",
    "FEATURES",
    "FeatureDef",
    "Kind",
    "feature",
]

Kind = Literal["int", "float", "rate", "bool", "category", "list", "map"]
Entity = Literal["user", "item", "context"]


@dataclass(frozen=True)
class FeatureDef:
    """One feature's definition."""

    name: str
    version: int
    kind: Kind
    """``rate`` is a float that must lie in [0, 1]."""
    entity: Entity
    description: str
    owner: str = "personalization"
    deprecated: bool = False
    lower: float | None = None
    """Hard lower bound for numbers (below it the build fails: a broken invariant)."""


_U: Entity = "user"
_I: Entity = "item"
_C: Entity = "context"

FEATURES: tuple[FeatureDef, ...] = (
    # user behaviour
    FeatureDef("total_sessions", 1, "int", _U, "Sessions before the snapshot time.", lower=0),
    FeatureDef(
        "session_duration_avg",
        1,
        "float",
        _U,
        "Mean session length in seconds (first to last event).",
        lower=0,
    ),
    FeatureDef("pages_per_session", 1, "float", _U, "Page views per session.", lower=0),
    FeatureDef(
        "bounce_rate", 1, "rate", _U, "Share of sessions with page views that had exactly one."
    ),
    FeatureDef(
        "return_frequency",
        1,
        "float",
        _U,
        "Distinct active days per week since the user's first event.",
        lower=0,
    ),
    FeatureDef(
        "time_of_day_preference",
        1,
        "category",
        _U,
        "Most frequent part of day of session starts (UTC): night, morning, afternoon, evening.",
    ),
    FeatureDef("device_type_preference", 1, "category", _U, "Most used device type."),
    FeatureDef(
        "content_category_interests",
        1,
        "list",
        _U,
        "Top 3 item categories by interaction weight (InteractionConfig defaults).",
    ),
    FeatureDef(
        "session_recency",
        1,
        "float",
        _U,
        "Hours from the user's last event to the snapshot time.",
        lower=0,
    ),
    FeatureDef(
        "lifecycle_cohort",
        1,
        "category",
        _U,
        "new (first event in the last 14 days), active (an event in the last 7), dormant "
        "(last event 7 to 30 days ago) or churned (more than 30 days).",
    ),
    FeatureDef(
        "segment",
        1,
        "category",
        _U,
        "'<cohort>:<top interest>', merged into '<cohort>' and then 'all' while a segment "
        "has fewer than k users (k = 20 by default), so none singles out a few people.",
    ),
    # engagement
    FeatureDef(
        "click_through_rate",
        1,
        "rate",
        _U,
        "Clicks per impression, or per page view for users never shown a list.",
    ),
    FeatureDef("conversion_rate", 1, "rate", _U, "Share of sessions with a conversion."),
    FeatureDef("error_rate", 1, "float", _U, "Errors per page view or page load.", lower=0),
    FeatureDef("search_frequency", 1, "float", _U, "Searches per session.", lower=0),
    FeatureDef("feature_adoption", 1, "map", _U, "Uses per product feature (feature_usage)."),
    # temporal context of the snapshot (and of each request, online)
    FeatureDef("hour_of_day", 1, "int", _C, "Hour (UTC) of the reference time.", lower=0),
    FeatureDef("day_of_week", 1, "category", _C, "Day name (UTC) of the reference time."),
    FeatureDef("is_weekend", 1, "bool", _C, "Saturday or Sunday (UTC)."),
    FeatureDef("season", 1, "category", _C, "Meteorological season (northern hemisphere)."),
    # items
    FeatureDef(
        "item_popularity_7d", 1, "int", _I, "Interaction events in the last 7 days.", lower=0
    ),
    FeatureDef(
        "item_popularity_30d", 1, "int", _I, "Interaction events in the last 30 days.", lower=0
    ),
    FeatureDef(
        "item_trend",
        1,
        "float",
        _I,
        "(events in the last 7 days + 1) / (events in the 7 days before + 1).",
        lower=0,
    ),
    FeatureDef(
        "item_ctr",
        1,
        "rate",
        _I,
        "Clicks per impression, or per page view for items never in a served list.",
    ),
    FeatureDef("item_category", 1, "category", _I, "Primary catalogue category."),
    FeatureDef("item_age_days", 1, "float", _I, "Days since the item was published."),
)
"""The feature registry: ``tastebud features list`` prints it."""

_BY_NAME = {f.name: f for f in FEATURES}


def feature(name: str) -> FeatureDef:
    """A feature's definition by name.

    Raises:
        KeyError: no such feature.
    """
    return _BY_NAME[name]
