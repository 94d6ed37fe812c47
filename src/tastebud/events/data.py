"""The ``data`` of every built-in event type: one model per type, extra fields allowed (kept and
counted by the pipeline), and the event categories of the seed document."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from tastebud.events.fields import (
    EffectiveType,
    Id,
    Millis,
    NonNeg,
    Scalar,
    ShortText,
    Text,
    Url,
)

__all__ = [
    "AccountData",
    "ClickData",
    "ContentEngagementData",
    "ConversionData",
    "CustomData",
    "DATA_MODELS",
    "EVENT_CATEGORIES",
    "ErrorData",
    "EventData",
    "FeatureUsageData",
    "FeedbackData",
    "FormSubmitData",
    "ImpressionData",
    "InteractionData",
    "NetworkQualityData",
    "PageLoadData",
    "PageViewData",
    "RatingData",
    "ResourceUsageData",
    "SearchData",
    "SettingsChangeData",
]


class EventData(BaseModel):
    """Base of ``data`` models: extra fields allowed (kept, counted by the pipeline)."""

    model_config = ConfigDict(extra="allow", allow_inf_nan=False)


# -- user interaction ---------------------------------------------------------------------------
class PageViewData(EventData):
    """A page was viewed."""

    url: Url | None = None
    title: Annotated[str, StringConstraints(max_length=512)] | None = None
    duration_ms: Millis | None = None
    """Time the page stayed in view."""


class ClickData(EventData):
    """An element (optionally showing an item) was clicked."""

    element_id: Id | None = None
    item_id: Id | None = None
    section: ShortText | None = None


class FormSubmitData(EventData):
    """A form was submitted; free-text values are scanned for PII before storage."""

    form_id: Id | None = None
    fields: dict[str, Scalar] | None = None
    success: bool | None = None


class SearchData(EventData):
    """A search query (scanned for PII before storage)."""

    query: Annotated[str, StringConstraints(max_length=1024)]
    results_count: Annotated[int, Field(ge=0)] | None = None


class ContentEngagementData(EventData):
    """Time spent on, scrolling through and sharing an item."""

    item_id: Id | None = None
    time_spent_ms: Millis | None = None
    scroll_depth: Annotated[float, Field(ge=0, le=1)] | None = None
    """Fraction of the content scrolled through, 0 to 1."""
    shared: bool = False


class RatingData(EventData):
    """An explicit rating of an item."""

    item_id: Id | None = None
    value: Annotated[float, Field(ge=-1e6, le=1e6)]


# -- performance --------------------------------------------------------------------------------
class PageLoadData(EventData):
    """Page load and API response times."""

    load_time_ms: Millis
    url: Url | None = None
    ttfb_ms: Millis | None = None
    api_response_ms: Millis | None = None


class ErrorData(EventData):
    """A client-side error (JavaScript exception, failed API call...)."""

    kind: ShortText
    """e.g. ``javascript``, ``api``, ``network``."""
    message: Text | None = None
    status_code: Annotated[int, Field(ge=100, le=599)] | None = None


class ResourceUsageData(EventData):
    """Memory, CPU and bandwidth use of the client."""

    memory_mb: NonNeg | None = None
    cpu_percent: Annotated[float, Field(ge=0, le=100)] | None = None
    bandwidth_kbps: NonNeg | None = None


class NetworkQualityData(EventData):
    """Connection speed and latency (as the Network Information API reports them)."""

    downlink_mbps: NonNeg | None = None
    rtt_ms: Millis | None = None
    effective_type: EffectiveType | None = None


# -- business -----------------------------------------------------------------------------------
class ConversionData(EventData):
    """A goal was achieved: purchase, sign-up, subscription..."""

    goal: ShortText
    value: Annotated[float, Field(ge=-1e12, le=1e12)] | None = None
    currency: Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")] | None = None
    """ISO 4217 code, e.g. ``EUR``."""
    item_id: Id | None = None


class FeatureUsageData(EventData):
    """A product feature was used."""

    feature: ShortText
    action: ShortText | None = None


class SettingsChangeData(EventData):
    """A user preference was modified."""

    setting: ShortText
    old_value: Scalar = None
    new_value: Scalar = None


class AccountData(EventData):
    """An account action."""

    action: Literal["login", "logout", "signup", "profile_update"]
    method: ShortText | None = None


# -- recommendation feedback and generic interactions -------------------------------------------
class ImpressionData(EventData):
    """Items shown to the user (a served recommendation list)."""

    item_ids: Annotated[list[Id], Field(max_length=1000)]
    list_id: Id | None = None
    model_version: ShortText | None = None
    mode: Literal["personalized", "session", "cold_start"] | None = None
    latency_ms: Annotated[float, Field(ge=0, le=3_600_000)] | None = None
    experiments: Annotated[dict[ShortText, ShortText], Field(max_length=20)] | None = None
    """Experiment name -> the variant served (docs/experiments.md)."""
    teams: Annotated[list[ShortText | None], Field(max_length=1000)] | None = None
    """Interleaving: the variant that placed each item of ``item_ids`` (``null``: nobody)."""
    error: bool | None = None
    surface: Literal["recommendations", "rank", "similar"] | None = None


class FeedbackData(EventData):
    """Explicit feedback on a recommended item."""

    item_id: Id | None = None
    kind: Literal["like", "dislike", "not_interested"]


class InteractionData(EventData):
    """A generic implicit-feedback interaction with a weight (used by importers)."""

    item_id: Id | None = None
    weight: Annotated[float, Field(ge=-1e9, le=1e9)] = 1.0


class CustomData(EventData):
    """Data of a client-defined ``custom.*`` event: any JSON object."""


DATA_MODELS: dict[str, type[EventData]] = {
    "page_view": PageViewData,
    "click": ClickData,
    "form_submit": FormSubmitData,
    "search": SearchData,
    "content_engagement": ContentEngagementData,
    "rating": RatingData,
    "page_load": PageLoadData,
    "error": ErrorData,
    "resource_usage": ResourceUsageData,
    "network_quality": NetworkQualityData,
    "conversion": ConversionData,
    "feature_usage": FeatureUsageData,
    "settings_change": SettingsChangeData,
    "account": AccountData,
    "impression": ImpressionData,
    "feedback": FeedbackData,
    "interaction": InteractionData,
}
"""Every built-in event type and the model of its ``data``."""

EVENT_CATEGORIES: dict[str, tuple[str, ...]] = {
    "interaction": (
        "page_view",
        "click",
        "form_submit",
        "search",
        "content_engagement",
        "rating",
        "interaction",
    ),
    "performance": ("page_load", "error", "resource_usage", "network_quality"),
    "business": ("conversion", "feature_usage", "settings_change", "account"),
    "feedback": ("impression", "feedback"),
}
