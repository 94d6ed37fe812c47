"""The event schema: one envelope, a typed ``data`` model per event type.

Every event type the seed names is here, plus recommendation feedback and the generic
``interaction`` importers use. Client-defined types are allowed under a ``custom.`` prefix (their
``data`` is any JSON object). ``data`` models accept extra fields (kept and counted by the
pipeline); the envelope rejects unknown top-level fields so that a typo (``userid``) is a clear
422 rather than a silently anonymous event; ``context`` keeps only an allow-list (data
minimisation: anything else is dropped).

Example::

    >>> ev = validate_event({"event_type": "search", "user_id": "u1",
    ...                      "timestamp": "2026-01-02T03:04:05Z", "data": {"query": "vpn"}})
    >>> ev.event_type, ev.data.query
    ('search', 'vpn')
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any, Literal, Union

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    StringConstraints,
    Tag,
    TypeAdapter,
    ValidationError,
    model_validator,
)

__all__ = [
    "AccountData",
    "ClickData",
    "ContentEngagementData",
    "Context",
    "ConversionData",
    "CustomData",
    "CustomEvent",
    "DATA_MODELS",
    "EVENT_CATEGORIES",
    "ErrorData",
    "EventBase",
    "EventIn",
    "FeatureUsageData",
    "FeedbackData",
    "FormSubmitData",
    "Id",
    "ImpressionData",
    "InteractionData",
    "NetworkInfo",
    "NetworkQualityData",
    "PageLoadData",
    "PageViewData",
    "RatingData",
    "ResourceUsageData",
    "SCHEMA_VERSION",
    "SearchData",
    "SettingsChangeData",
    "Text",
    "event_timestamp_ms",
    "identity_and_item_rules",
    "plain_fields",
    "rule_problems",
    "timestamp_ms",
    "validate_event",
]

SCHEMA_VERSION = 1
"""Version of the event schema written with every stored event."""

# 1 to 128 printable characters: no C0/C1 control characters, DEL or line/paragraph separators.
Id = Annotated[
    str,
    StringConstraints(
        min_length=1, max_length=128, pattern=r"^[^\x00-\x1f\x7f-\x9f\u2028\u2029]+$"
    ),
]
Text = Annotated[str, StringConstraints(max_length=2048)]
ShortText = Annotated[str, StringConstraints(min_length=1, max_length=128)]
Url = Annotated[str, StringConstraints(max_length=2048)]
Millis = Annotated[float, Field(ge=0, le=7 * 24 * 3600 * 1000, allow_inf_nan=False)]
NonNeg = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Scalar = str | int | float | bool | None
CountryCode = Annotated[str, StringConstraints(pattern=r"^[A-Za-z]{2}$", to_lower=True)]


class _Data(BaseModel):
    """Base of ``data`` models: extra fields allowed (kept, counted by the pipeline)."""

    model_config = ConfigDict(extra="allow", allow_inf_nan=False)


# -- user interaction ---------------------------------------------------------------------------
class PageViewData(_Data):
    """A page was viewed."""

    url: Url | None = None
    title: Annotated[str, StringConstraints(max_length=512)] | None = None
    duration_ms: Millis | None = None
    """Time the page stayed in view."""


class ClickData(_Data):
    """An element (optionally showing an item) was clicked."""

    element_id: Id | None = None
    item_id: Id | None = None
    section: ShortText | None = None


class FormSubmitData(_Data):
    """A form was submitted; free-text values are scanned for PII before storage."""

    form_id: Id | None = None
    fields: dict[str, Scalar] | None = None
    success: bool | None = None


class SearchData(_Data):
    """A search query (scanned for PII before storage)."""

    query: Annotated[str, StringConstraints(max_length=1024)]
    results_count: Annotated[int, Field(ge=0)] | None = None


class ContentEngagementData(_Data):
    """Time spent on, scrolling through and sharing an item."""

    item_id: Id | None = None
    time_spent_ms: Millis | None = None
    scroll_depth: Annotated[float, Field(ge=0, le=1)] | None = None
    """Fraction of the content scrolled through, 0 to 1."""
    shared: bool = False


class RatingData(_Data):
    """An explicit rating of an item."""

    item_id: Id | None = None
    value: Annotated[float, Field(ge=-1e6, le=1e6)]


# -- performance --------------------------------------------------------------------------------
class PageLoadData(_Data):
    """Page load and API response times."""

    load_time_ms: Millis
    url: Url | None = None
    ttfb_ms: Millis | None = None
    api_response_ms: Millis | None = None


class ErrorData(_Data):
    """A client-side error (JavaScript exception, failed API call...)."""

    kind: ShortText
    """e.g. ``javascript``, ``api``, ``network``."""
    message: Text | None = None
    status_code: Annotated[int, Field(ge=100, le=599)] | None = None


class ResourceUsageData(_Data):
    """Memory, CPU and bandwidth use of the client."""

    memory_mb: NonNeg | None = None
    cpu_percent: Annotated[float, Field(ge=0, le=100)] | None = None
    bandwidth_kbps: NonNeg | None = None


EffectiveType = Literal["slow-2g", "2g", "3g", "4g", "5g", "wifi", "ethernet", "unknown"]


class NetworkQualityData(_Data):
    """Connection speed and latency (as the Network Information API reports them)."""

    downlink_mbps: NonNeg | None = None
    rtt_ms: Millis | None = None
    effective_type: EffectiveType | None = None


# -- business -----------------------------------------------------------------------------------
class ConversionData(_Data):
    """A goal was achieved: purchase, sign-up, subscription..."""

    goal: ShortText
    value: Annotated[float, Field(ge=-1e12, le=1e12)] | None = None
    currency: Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")] | None = None
    """ISO 4217 code, e.g. ``EUR``."""
    item_id: Id | None = None


class FeatureUsageData(_Data):
    """A product feature was used."""

    feature: ShortText
    action: ShortText | None = None


class SettingsChangeData(_Data):
    """A user preference was modified."""

    setting: ShortText
    old_value: Scalar = None
    new_value: Scalar = None


class AccountData(_Data):
    """An account action."""

    action: Literal["login", "logout", "signup", "profile_update"]
    method: ShortText | None = None


# -- recommendation feedback and generic interactions -------------------------------------------
class ImpressionData(_Data):
    """Items shown to the user (a served recommendation list)."""

    item_ids: Annotated[list[Id], Field(max_length=1000)]
    list_id: Id | None = None
    model_version: ShortText | None = None


class FeedbackData(_Data):
    """Explicit feedback on a recommended item."""

    item_id: Id | None = None
    kind: Literal["like", "dislike", "not_interested"]


class InteractionData(_Data):
    """A generic implicit-feedback interaction with a weight (used by importers)."""

    item_id: Id | None = None
    weight: Annotated[float, Field(ge=-1e9, le=1e9)] = 1.0


class CustomData(_Data):
    """Data of a client-defined ``custom.*`` event: any JSON object."""


DATA_MODELS: dict[str, type[_Data]] = {
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

# Types whose event is about one item: the item id is required (envelope or data).
_ITEM_REQUIRED = frozenset({"content_engagement", "rating", "feedback", "interaction"})
_CUSTOM_TYPE = r"^custom\.[a-z0-9][a-z0-9_.\-]{0,56}$"


class NetworkInfo(BaseModel):
    """Network conditions reported in the context."""

    model_config = ConfigDict(extra="ignore")

    effective_type: EffectiveType | None = None
    downlink_mbps: NonNeg | None = None
    rtt_ms: Millis | None = None


class Context(BaseModel):
    """Where the event happened. Fields outside this allow-list are dropped (data minimisation).

    ``ip`` is only kept if the sensitive-field policy allows it (default: dropped; ``truncate``
    keeps the /24 or /48 network).
    """

    model_config = ConfigDict(extra="ignore")

    user_agent: Annotated[str, StringConstraints(max_length=512)] | None = None
    url: Url | None = None
    referrer: Url | None = None
    device_type: Annotated[str, StringConstraints(max_length=32, to_lower=True)] | None = None
    """``desktop``, ``mobile``, ``tablet``, ``tv`` or ``other`` (lower-cased)."""
    locale: Annotated[str, StringConstraints(max_length=35)] | None = None
    country: CountryCode | None = None
    timezone: Annotated[str, StringConstraints(max_length=64)] | None = None
    app_version: Annotated[str, StringConstraints(max_length=64)] | None = None
    os: Annotated[str, StringConstraints(max_length=64)] | None = None
    browser: Annotated[str, StringConstraints(max_length=64)] | None = None
    network: NetworkInfo | None = None
    ip: Annotated[str, StringConstraints(max_length=64)] | None = None


def _parse_iso(value: Any) -> Any:
    """Parse ISO-8601 strings with the C parser (stdlib timezones make ``.timestamp()`` several
    times cheaper on the ingest path); anything else is left to pydantic and its messages."""
    if type(value) is str:
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            return value
    return value


Timestamp = Annotated[AwareDatetime, BeforeValidator(_parse_iso)]
"""An event time: ISO-8601 with a zone offset, or Unix seconds."""
_TIMESTAMP: TypeAdapter[datetime] = TypeAdapter(Timestamp)


def timestamp_ms(value: Any) -> int | None:
    """The milliseconds of ``value`` read as an event's ``timestamp`` is read, or ``None`` when
    it is not a valid one (its field error says why).

    >>> timestamp_ms("2026-01-02T03:04:05.678+01:00"), timestamp_ms("yesterday")
    (1767319445678, None)
    """
    try:
        return event_timestamp_ms(_TIMESTAMP.validate_python(value))
    except ValidationError:
        return None


def plain_fields(model: BaseModel) -> dict[str, Any]:
    """``model.model_dump(exclude_none=True)`` for the flat models of events, faster: fields and
    extras straight from the instance dict, nested models recursively."""
    out: dict[str, Any] = {}
    for key, value in model.__dict__.items():
        if value is None:
            continue
        out[key] = plain_fields(value) if isinstance(value, BaseModel) else value
    extra = model.__pydantic_extra__
    if extra:
        for key, value in extra.items():
            if value is not None:
                out[key] = value
    return out


def rule_problems(fields: Mapping[str, Any], data_fields: Mapping[str, Any]) -> list[str]:
    """Every cross-field rule an event breaks (see :func:`identity_and_item_rules`), checked on
    plain mappings without changing them: the ingest path reports these beside the field
    errors, since the models only check them once every field is valid."""
    problems = []
    if fields.get("user_id") is None and fields.get("anonymous_id") is None:
        problems.append("one of user_id or anonymous_id is required")
    item, data_item = fields.get("item_id"), data_fields.get("item_id")
    if item is not None and data_item is not None and item != data_item:
        problems.append("item_id and data.item_id differ")
    if item is None and data_item is None:
        event_type = fields.get("event_type", "")
        if event_type in _ITEM_REQUIRED:
            problems.append(f"a {event_type} event needs item_id (in the envelope or in data)")
        if event_type == "click" and data_fields.get("element_id") is None:
            problems.append("a click event needs element_id or item_id")
    return problems


def identity_and_item_rules(fields: dict[str, Any], data_fields: Mapping[str, Any]) -> None:
    """The cross-field rules of every event, on plain mappings (shared by the models and the
    ingest fast path): an identity is required; a declared ``data.item_id`` is lifted into
    ``item_id`` and must agree with it; item events need an item; clicks need an element or an
    item.

    Raises:
        ValueError: a rule is broken (the message, every broken rule, is shown to the client).
    """
    data_item = data_fields.get("item_id")
    if data_item is not None and fields.get("item_id") is None:
        fields["item_id"] = data_item
    problems = rule_problems(fields, data_fields)
    if problems:
        raise ValueError("; ".join(problems))


class EventBase(BaseModel):
    """The envelope every event shares."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    event_id: Id | None = None
    """Client-generated idempotency key; when absent, a keyed hash of the event's content (and
    returned), so that a retry of the same event is a duplicate."""
    timestamp: Timestamp
    """When the event happened: ISO-8601 with a zone offset (or Unix seconds)."""
    user_id: Id | None = None
    anonymous_id: Id | None = None
    session_id: Id | None = None
    item_id: Id | None = None
    context: Context | None = None

    @model_validator(mode="after")
    def _identity_and_item(self) -> EventBase:
        # Fields are read from __dict__: a missing attribute would take pydantic's slow
        # __getattr__ path for extras. Extras of data are not in data.__dict__, so only a
        # declared data.item_id is lifted.
        data = self.__dict__.get("data")
        identity_and_item_rules(self.__dict__, data.__dict__ if data is not None else {})
        return self


def _event_model(event_type: str, data_model: type[_Data]) -> type[EventBase]:
    """Build ``<Type>Event``: the envelope with ``event_type`` fixed and ``data`` typed."""
    name = "".join(p.capitalize() for p in event_type.split("_")) + "Event"
    namespace: dict[str, Any] = {
        "__annotations__": {"event_type": Literal[event_type], "data": data_model},
        "__module__": __name__,
        "__doc__": f"A ``{event_type}`` event. {data_model.__doc__ or ''}".strip(),
    }
    try:
        data_model()
        namespace["data"] = Field(default_factory=data_model)  # every data field is optional
    except ValidationError:
        pass  # data carries required fields
    return type(name, (EventBase,), namespace)


class CustomEvent(EventBase):
    """A client-defined event type under the ``custom.`` prefix; ``data`` is any JSON object."""

    event_type: Annotated[str, StringConstraints(pattern=_CUSTOM_TYPE)]
    data: CustomData = Field(default_factory=CustomData)


_EVENT_MODELS: dict[str, type[EventBase]] = {
    name: _event_model(name, model) for name, model in DATA_MODELS.items()
}


def _discriminate(value: Any) -> str | None:
    event_type = value.get("event_type") if isinstance(value, dict) else None
    if not isinstance(event_type, str):
        return None
    if event_type in _EVENT_MODELS:
        return event_type
    if event_type.startswith("custom."):
        return "custom"
    return None


# Built at import time from DATA_MODELS, so static checkers see it as Any.
EventIn: Any = Annotated[
    Union[  # noqa: UP007 - a tagged union needs the explicit Union form
        tuple(Annotated[m, Tag(n)] for n, m in _EVENT_MODELS.items())
        + (Annotated[CustomEvent, Tag("custom")],)
    ],
    Discriminator(
        _discriminate,
        custom_error_type="unknown_event_type",
        custom_error_message=(
            "must be one of " + ", ".join(sorted(_EVENT_MODELS)) + " or start with 'custom.'"
        ),
    ),
]
"""Any valid event (a tagged union on ``event_type``)."""

_ADAPTER: TypeAdapter[EventBase] = TypeAdapter(EventIn)


def validate_event(raw: Any) -> EventBase:
    """Validate one decoded JSON event.

    Known types go straight to their own model (a dict lookup instead of the tagged union's
    discriminator call: this is the ingest hot path); anything else goes through the union,
    which produces the precise error.

    Raises:
        pydantic.ValidationError: with one entry per problem.
    """
    if isinstance(raw, dict):
        model = _EVENT_MODELS.get(raw.get("event_type"))  # type: ignore[arg-type]
        if model is not None:
            return model.model_validate(raw)
    return _ADAPTER.validate_python(raw)


def event_timestamp_ms(ts: datetime) -> int:
    """Milliseconds since the epoch of an aware datetime."""
    return int(math.floor(ts.timestamp() * 1000))
