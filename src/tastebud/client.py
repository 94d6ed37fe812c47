"""A small Python client for the Tastebud API: send events in batches, retried safely.

Every event gets an ``event_id`` before its first attempt, so a batch that is retried after a
timeout or a crash of the server is stored exactly once (the API is idempotent on ``event_id``).

Example::

    from tastebud.client import Client

    with Client("http://127.0.0.1:8000", key) as tb:
        summary = tb.send([{"event_type": "page_view", "user_id": "u1",
                            "timestamp": "2026-11-26T10:00:00Z", "data": {"url": "/"}}])
        print(summary.accepted, summary.rejected)
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

__all__ = ["Client", "ClientError", "SendSummary"]


class ClientError(Exception):
    """The server refused a request (4xx other than 429) or retries were exhausted.

    Attributes:
        status: HTTP status, or ``None`` when the server never answered.
        body: The decoded error body, if any.
    """

    def __init__(self, message: str, status: int | None = None, body: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.body = body


@dataclass
class SendSummary:
    """Totals over every batch sent by one :meth:`Client.send` call."""

    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    rejections: list[dict[str, Any]] = field(default_factory=list)
    """The rejected events' results (``event_id``, ``reason``)."""


class Client:
    """HTTP client for one Tastebud server.

    Args:
        url: Base URL, e.g. ``http://127.0.0.1:8000``.
        key: An API key (``ingest`` scope suffices for sending events).
        batch_size: Events per request (the server takes at most 1,000).
        max_retries: Attempts after the first for network errors, 5xx and 429 answers.
        backoff: First retry delay in seconds; doubles each attempt (capped at 10 s).
        timeout: Seconds per request.
    """

    def __init__(
        self,
        url: str,
        key: str,
        *,
        batch_size: int = 500,
        max_retries: int = 8,
        backoff: float = 0.1,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if not 1 <= batch_size <= 1000:
            raise ValueError("batch_size must be between 1 and 1000")
        self.batch_size = batch_size
        self.max_retries = max_retries
        self.backoff = backoff
        self._http = httpx.Client(
            base_url=url.rstrip("/"),
            headers={"Authorization": f"Bearer {key}"},
            timeout=timeout,
            transport=transport,
        )

    def __repr__(self) -> str:
        return f"Client({str(self._http.base_url)!r}, key=<hidden>)"

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        delay = self.backoff
        last: str = "no attempt made"
        for attempt in range(self.max_retries + 1):
            try:
                response = self._http.request(method, path, **kwargs)
            except httpx.TransportError as exc:
                last = f"{type(exc).__name__}"
            else:
                if response.status_code == 429 or response.status_code >= 500:
                    last = f"HTTP {response.status_code}"
                    retry_after = response.headers.get("Retry-After")
                    if retry_after and retry_after.isdigit():
                        delay = max(delay, float(retry_after))
                elif response.status_code >= 400:
                    try:
                        body = response.json()
                        message = body["error"]["message"]
                    except (ValueError, KeyError, TypeError):
                        body, message = None, response.text[:200]
                    raise ClientError(message, response.status_code, body)
                else:
                    return response
            if attempt < self.max_retries:
                time.sleep(delay)
                delay = min(delay * 2, 10.0)
        raise ClientError(f"gave up after {self.max_retries + 1} attempts ({last})")

    def track(self, event: Mapping[str, Any]) -> dict[str, Any]:
        """Send one event; returns ``{"event_id", "status"}``.

        Raises:
            ClientError: the event was rejected (the message says why) or the server is down.
        """
        payload = dict(event)
        payload.setdefault("event_id", uuid.uuid4().hex)
        result: dict[str, Any] = self._request("POST", "/v1/events", json=payload).json()
        return result

    def send(
        self,
        events: Iterable[Mapping[str, Any]],
        *,
        on_batch: Callable[[int], None] | None = None,
    ) -> SendSummary:
        """Send events in batches; each batch is retried with the same event ids until stored.

        Args:
            events: Event dicts; any without ``event_id`` get one (the inputs are not modified).
            on_batch: Called with the number of events after each acknowledged batch
                (progress bars).
        """
        summary = SendSummary()
        batch: list[dict[str, Any]] = []
        for event in events:
            payload = dict(event)
            payload.setdefault("event_id", uuid.uuid4().hex)
            batch.append(payload)
            if len(batch) >= self.batch_size:
                self._send_batch(batch, summary, on_batch)
                batch = []
        if batch:
            self._send_batch(batch, summary, on_batch)
        return summary

    def _send_batch(
        self,
        batch: list[dict[str, Any]],
        summary: SendSummary,
        on_batch: Callable[[int], None] | None,
    ) -> None:
        body = self._request("POST", "/v1/events/batch", json={"events": batch}).json()
        summary.accepted += body["accepted"]
        summary.duplicates += body["duplicates"]
        summary.rejected += body["rejected"]
        summary.rejections.extend(r for r in body["results"] if r["status"] == "rejected")
        if on_batch is not None:
            on_batch(len(batch))

    def put_items(self, items: Iterable[Mapping[str, Any]]) -> int:
        """Create or replace catalogue items (needs an ``admin`` key), 1,000 per request.

        Returns:
            The number of items created or updated.

        Raises:
            ClientError: the key may not write the catalogue (403), or items were rejected.
        """
        done = 0
        batch: list[Mapping[str, Any]] = []
        for item in items:
            batch.append(item)
            if len(batch) == 1000:
                done += self._put_item_batch(batch)
                batch = []
        if batch:
            done += self._put_item_batch(batch)
        return done

    def _put_item_batch(self, batch: list[Mapping[str, Any]]) -> int:
        body = self._request("POST", "/v1/items/batch", json={"items": batch}).json()
        if body["rejected"]:
            bad = next(r for r in body["results"] if r["status"] == "rejected")
            raise ClientError(f"{body['rejected']} items rejected, e.g. {bad['reason']}")
        return int(body["created"]) + int(body["updated"])

    def health(self) -> bool:
        """Whether ``/readyz`` answers ok."""
        try:
            return self._http.get("/readyz").status_code == 200
        except httpx.TransportError:
            return False
