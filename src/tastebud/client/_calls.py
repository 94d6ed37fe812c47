"""One request builder per API call, shared by both clients: the path (segments encoded), the
query, the body and how the answer is read."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from typing import Any, NotRequired, TypedDict

import httpx
from pydantic import JsonValue, TypeAdapter

from tastebud.client._core import Call, ClientError, parse_model, parse_typed, segment
from tastebud.client._export import ExportDocument
from tastebud.client._types import (
    ErasureReceipt,
    EventBatchAnswer,
    EventReceipt,
    FeedbackReceipt,
    ItemBatchAnswer,
    Predictions,
    Profile,
    Ranking,
    Recommendations,
    SimilarItems,
)

__all__ = [
    "HEALTH_PATH",
    "ITEM_BATCH",
    "erase",
    "event",
    "event_batch",
    "export",
    "feedback",
    "item_batch",
    "predictions",
    "profile",
    "put_user",
    "rank",
    "recommendations",
    "similar",
]

HEALTH_PATH = "/readyz"
ITEM_BATCH = 1000
"""Items per ``POST /v1/items/batch`` (the server's limit)."""


def _query(**values: str | int | None) -> tuple[tuple[str, str], ...]:
    return tuple((k, str(v)) for k, v in values.items() if v is not None)


def _user(user_id: str) -> str:
    return f"/v1/users/{segment(user_id, 'user_id')}"


_OBJECT: TypeAdapter[dict[str, JsonValue]] = TypeAdapter(dict[str, JsonValue])
_object = parse_typed(_OBJECT, "a JSON object")
_event_batch = parse_typed(TypeAdapter(EventBatchAnswer), "EventBatchAnswer")
_item_batch = parse_typed(TypeAdapter(ItemBatchAnswer), "ItemBatchAnswer")
_export = parse_typed(TypeAdapter(ExportDocument), "ExportDocument")


class _RankBody(TypedDict):
    items: list[dict[str, Any]]
    """The caller's content mappings, as given (or ``{"id": ...}`` for a plain id)."""
    skill_level: NotRequired[str]


class _FeedbackBody(TypedDict):
    item_id: str
    kind: str
    event_id: str
    list_id: NotRequired[str]


def _receipt(response: httpx.Response) -> EventReceipt:
    body = _object(response)
    event_id, status = body.get("event_id"), body.get("status")
    if not isinstance(event_id, str) or not isinstance(status, str):
        raise ClientError("the server's answer has no event_id and status", response.status_code)
    return EventReceipt(event_id=event_id, status=status)


def _written(response: httpx.Response) -> None:
    _object(response)  # the stored user (a JSON object): nothing to keep


def _items_written(response: httpx.Response) -> int:
    body = _item_batch(response)
    if body["rejected"]:
        bad = next(r for r in body["results"] if r["status"] == "rejected")
        raise ClientError(f"{body['rejected']} items rejected, e.g. {bad.get('reason')}", body=body)
    return body["created"] + body["updated"]


def event(payload: Mapping[str, Any]) -> Call[EventReceipt]:
    """``POST /v1/events``: the event as given (without ``event_id`` the server derives one
    from its content)."""
    return Call("POST", "/v1/events", _receipt, body=dict(payload))


def event_batch(events: list[dict[str, Any]]) -> Call[EventBatchAnswer]:
    """``POST /v1/events/batch`` with the caller's events, as given."""
    return Call("POST", "/v1/events/batch", _event_batch, body={"events": events})


def item_batch(items: list[dict[str, Any]]) -> Call[int]:
    """``POST /v1/items/batch``; the answer is the number of items written."""
    return Call("POST", "/v1/items/batch", _items_written, body={"items": items})


def put_user(user: Mapping[str, Any]) -> Call[None]:
    """``PUT /v1/users/{user_id}`` with the mapping's other keys as attributes."""
    body = {k: v for k, v in user.items() if k != "user_id"}
    user_id = user.get("user_id")
    return Call("PUT", _user("" if user_id is None else str(user_id)), _written, body=body)


def recommendations(
    user_id: str,
    k: int,
    *,
    category: str | None,
    exclude: Iterable[str],
    device: str | None,
    hour: int | None,
    locale: str | None,
    network: str | None,
) -> Call[Recommendations]:
    """``GET /v1/users/{user_id}/recommendations``.

    Raises:
        TypeError: ``exclude`` is a string rather than a collection of ids.
        ValueError: an excluded id is empty or holds a comma (the query's separator).
    """
    if isinstance(exclude, str):
        raise TypeError("exclude takes a collection of item ids, not one string")
    skip = list(dict.fromkeys(exclude))
    if any(not isinstance(i, str) or not i or "," in i for i in skip):
        raise ValueError("excluded item ids must be non-empty strings without commas")
    params = _query(
        k=k,
        category=category,
        exclude=",".join(skip) or None,
        device=device,
        hour=hour,
        locale=locale,
        network=network,
    )
    return Call("GET", f"{_user(user_id)}/recommendations", parse_model(Recommendations), params)


def similar(item_id: str, k: int) -> Call[SimilarItems]:
    """``GET /v1/items/{item_id}/similar``."""
    path = f"/v1/items/{segment(item_id, 'item_id')}/similar"
    return Call("GET", path, parse_model(SimilarItems), _query(k=k))


def rank(
    user_id: str, items: Iterable[Mapping[str, Any] | str], skill_level: str | None
) -> Call[Ranking]:
    """``POST /v1/users/{user_id}/rank``; a plain string is the content's ``id``."""
    if isinstance(items, str | Mapping):
        raise TypeError("items takes a collection of content (ids or mappings)")
    content = [{"id": c} if isinstance(c, str) else dict(c) for c in items]
    body: _RankBody = {"items": content}
    if skill_level is not None:
        body["skill_level"] = skill_level
    return Call("POST", f"{_user(user_id)}/rank", parse_model(Ranking), body=body)


def feedback(user_id: str, item_id: str, kind: str, list_id: str | None) -> Call[FeedbackReceipt]:
    """``POST /v1/users/{user_id}/feedback``."""
    # One idempotency key per call, the same on every retry: stored once.
    body: _FeedbackBody = {"item_id": item_id, "kind": kind, "event_id": uuid.uuid4().hex}
    if list_id is not None:
        body["list_id"] = list_id
    return Call("POST", f"{_user(user_id)}/feedback", parse_model(FeedbackReceipt), body=body)


def profile(user_id: str) -> Call[Profile]:
    """``GET /v1/users/{user_id}/profile``."""
    return Call("GET", f"{_user(user_id)}/profile", parse_model(Profile))


def predictions(user_id: str) -> Call[Predictions]:
    """``GET /v1/users/{user_id}/predictions``."""
    return Call("GET", f"{_user(user_id)}/predictions", parse_model(Predictions))


def export(user_id: str) -> Call[ExportDocument]:
    """``GET /v1/users/{user_id}/export`` (the whole document)."""
    return Call("GET", f"{_user(user_id)}/export", _export)


def erase(user_id: str) -> Call[ErasureReceipt]:
    """``DELETE /v1/users/{user_id}``."""
    return Call("DELETE", _user(user_id), parse_model(ErasureReceipt))
