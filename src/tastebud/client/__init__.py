"""A Python client for the Tastebud API, blocking (:class:`Client`) and asyncio
(:class:`AsyncClient`): send events in batches, write the catalogue, read recommendations,
similar items, rankings, profiles and predictions, record feedback, export and erase users.

Both clients share one definition of every request, answer parser and retry decision
(``_calls``, ``_core``); they differ only in the transport call and the sleep between attempts.
Reads answer typed, frozen models (``_types``). Network errors, 5xx and 429 answers are retried
with a doubling backoff that honours ``Retry-After``; every other error answer raises
:class:`ClientError` at once, with the HTTP ``status``, the server's error ``code`` and ``body``.

Events are sent as given: the server identifies an event without ``event_id`` by a keyed hash
of its content, so a retry or a resend is a duplicate, never a second event. docs/client.md has
runnable examples.

Example::

    from tastebud.client import Client

    with Client("http://127.0.0.1:8000", key) as tb:
        summary = tb.send([{"event_type": "page_view", "user_id": "u1",
                            "timestamp": "2026-11-26T10:00:00Z", "data": {"url": "/"}}])
        print(summary.accepted, summary.duplicates, summary.rejected)
"""

from __future__ import annotations

from tastebud.client._async import AsyncClient
from tastebud.client._core import ClientError, SendSummary
from tastebud.client._export import ExportDocument
from tastebud.client._sync import Client
from tastebud.client._types import (
    ErasureReceipt,
    EventOutcome,
    EventReceipt,
    Exposure,
    FeedbackReceipt,
    ModelRef,
    PredictionReason,
    Predictions,
    PredictorRef,
    Profile,
    RankedItem,
    Ranking,
    Reason,
    RecentAction,
    Recommendations,
    RecommendedItem,
    Session,
    SimilarItems,
)

__all__ = [
    "AsyncClient",
    "Client",
    "ClientError",
    "ErasureReceipt",
    "EventOutcome",
    "EventReceipt",
    "ExportDocument",
    "Exposure",
    "FeedbackReceipt",
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
    "SendSummary",
    "Session",
    "SimilarItems",
]
