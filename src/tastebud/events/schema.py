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

from tastebud.events.data import DATA_MODELS, CustomData, EventData
from tastebud.events.fields import CountryCode, EffectiveType, Id, Millis, NonNeg, Url

__all__ = [
    "Context",
    "CustomEvent",
    "EventBase",
    "EventIn",
    "NetworkInfo",
    "SCHEMA_VERSION",
    "event_timestamp_ms",
    "identity_and_item_rules",
    "plain_fields",
    "rule_problems",
    "timestamp_ms",
    "validate_event",
]

SCHEMA_VERSION = 1
"""Version of the event schema written with every stored event."""

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


def _event_model(event_type: str, data_model: type[EventData]) -> type[EventBase]:
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
