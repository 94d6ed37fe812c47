"""The ingest fast path: the event models' rules, validated into plain dicts.

Pydantic models are the single definition of the event schema (documentation, OpenAPI,
:func:`~tastebud.events.schema.validate_event`). Building model instances and dumping them back
to dicts costs about a third of ingest's CPU, so this module derives, from the same models,
``TypedDict`` validators with the same fields, constraints, validators and extra-field policies,
whose output is already the dict that is stored. Only valid events take this path: an event the
fast validator rejects is validated again through its model, so clients always get the models'
messages. ``tests/test_schema.py`` checks that both paths accept and reject the same inputs and
produce the same data.
"""

from __future__ import annotations

import types
from typing import Annotated, Any, NotRequired, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError, with_config
from typing_extensions import TypedDict

from tastebud.events.schema import (
    _EVENT_MODELS,
    CustomEvent,
    EventBase,
    identity_and_item_rules,
    plain_fields,
    validate_event,
)

__all__ = ["parse_event"]

_DERIVED: dict[type[BaseModel], Any] = {}
# Per model: fields with a default other than None, filled in when absent (as the model would).
_DEFAULTS: dict[type[BaseModel], dict[str, Any]] = {}
# Per model: fields whose value is a nested model (a dict after validation).
_NESTED: dict[type[BaseModel], list[tuple[str, type[BaseModel]]]] = {}


def _convert(tp: Any) -> Any:
    """The type expression ``tp`` with every model replaced by its derived TypedDict."""
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return _typed_dict(tp)
    origin = get_origin(tp)
    if origin is Annotated:
        inner, *meta = get_args(tp)
        return Annotated[(_convert(inner), *meta)]
    if origin in (Union, types.UnionType):
        return Union[tuple(_convert(a) for a in get_args(tp))]  # noqa: UP007
    if origin is list:
        return list[_convert(get_args(tp)[0])]  # type: ignore[misc]
    if origin is dict:
        key, value = get_args(tp)
        return dict[_convert(key), _convert(value)]  # type: ignore[misc]
    return tp


def _typed_dict(model: type[BaseModel]) -> Any:
    if model in _DERIVED:
        return _DERIVED[model]
    fields: dict[str, Any] = {}
    defaults: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        tp = _convert(info.annotation)
        if info.metadata:
            tp = Annotated[(tp, *info.metadata)]
        if info.is_required():
            fields[name] = tp
            continue
        fields[name] = NotRequired[tp]
        default = info.get_default(call_default_factory=True)
        if isinstance(default, BaseModel):
            default = default.model_dump(exclude_none=True)
        if default is not None:
            defaults[name] = default
    config = ConfigDict(
        extra=model.model_config.get("extra", "ignore"),
        allow_inf_nan=model.model_config.get("allow_inf_nan", True),
    )
    make: Any = TypedDict  # the functional form, with fields known only at run time
    derived = with_config(config)(make(f"{model.__name__}Dict", fields))
    _DERIVED[model] = derived
    _DEFAULTS[model] = defaults
    _NESTED[model] = [
        (name, nested)
        for name, info in model.model_fields.items()
        if (nested := _nested_model(info.annotation)) is not None
    ]
    return derived


def _fill(model: type[BaseModel], value: dict[str, Any]) -> dict[str, Any]:
    """Defaults for absent fields and no ``None`` values, recursively (``exclude_none``)."""
    if None in value.values():  # explicit nulls are rare: one C-level scan decides
        value = {k: v for k, v in value.items() if v is not None}
    defaults, nested = _FILL[model]
    for name, default in defaults:
        if name not in value:
            value[name] = default.copy() if type(default) is dict else default
    for name, sub_model, trivial in nested:
        sub = value.get(name)
        # A nested model without defaults or models of its own only needs its nulls dropped:
        # the call is skipped unless it has one (the hot path: context.network, most data).
        if sub is not None and (not trivial or None in sub.values()):
            value[name] = _fill(sub_model, sub)
    return value


def _nested_model(tp: Any) -> type[BaseModel] | None:
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return tp
    for arg in get_args(tp):
        found = _nested_model(arg)
        if found is not None:
            return found
    return None


def _declares_item(model: type[BaseModel]) -> bool:
    data_model = _nested_model(model.model_fields["data"].annotation)
    return data_model is not None and "item_id" in data_model.model_fields


_ADAPTERS: dict[str, tuple[type[EventBase], TypeAdapter[Any], bool]] = {
    name: (model, TypeAdapter(_typed_dict(model)), _declares_item(model))
    for name, model in _EVENT_MODELS.items()
}
_CUSTOM = (CustomEvent, TypeAdapter(_typed_dict(CustomEvent)), False)
# Per model, what _fill does: (defaults, (nested field, its model, whether that model has
# neither defaults nor nested models)), derived once from _DEFAULTS and _NESTED.
_FillPlan = tuple[tuple[tuple[str, Any], ...], tuple[tuple[str, type[BaseModel], bool], ...]]
_FILL: dict[type[BaseModel], _FillPlan] = {
    model: (
        tuple(_DEFAULTS[model].items()),
        tuple(
            (name, nested, not _DEFAULTS[nested] and not _NESTED[nested])
            for name, nested in _NESTED[model]
        ),
    )
    for model in _DERIVED
}


def parse_event(raw: Any) -> dict[str, Any]:
    """Validate one decoded JSON event into the dict that is stored (``None`` fields dropped,
    defaults filled, a declared ``data.item_id`` lifted into ``item_id`` and removed from
    ``data``).

    Raises:
        pydantic.ValidationError: from the event's model, with its precise messages.
    """
    if type(raw) is dict:
        event_type = raw.get("event_type")
        entry = _ADAPTERS.get(event_type) if type(event_type) is str else None
        if entry is None and type(event_type) is str and event_type.startswith("custom."):
            entry = _CUSTOM
        if entry is not None:
            model, adapter, lifts_item = entry
            try:
                value = _fill(model, adapter.validate_python(raw))
                data = value.get("data", {})
                identity_and_item_rules(value, data if lifts_item else {})
            except (ValidationError, ValueError):
                pass  # fall through: the model says precisely what is wrong
            else:
                if lifts_item:
                    data.pop("item_id", None)
                return value
    # The model says precisely what is wrong (it raises), or, should the derived validator
    # ever be stricter than its model, the model's verdict wins.
    return _from_model(validate_event(raw))


def _from_model(ev: EventBase) -> dict[str, Any]:
    value = plain_fields(ev)
    data = value.get("data")
    if data is not None and _declares_item(type(ev)):
        data.pop("item_id", None)
    value.setdefault("data", {})
    return value
