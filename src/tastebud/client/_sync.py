"""The blocking client (``httpx.Client``)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal, TypeVar

import httpx

from tastebud.client import _calls as calls
from tastebud.client._core import Call, ClientBase, SendSummary, batches
from tastebud.client._export import ExportDocument
from tastebud.client._types import (
    ErasureReceipt,
    EventReceipt,
    FeedbackReceipt,
    Predictions,
    Profile,
    Ranking,
    Recommendations,
    SimilarItems,
)

__all__ = ["Client"]

T = TypeVar("T")


class Client(ClientBase):
    """HTTP client for one Tastebud server; use it as a context manager (or call
    :meth:`close`).

    Every method retries network errors, 5xx and 429 answers (honouring ``Retry-After``) and
    raises :class:`ClientError` for any other error answer, with its ``status`` and ``code``.

    Args:
        url: Base URL, e.g. ``http://127.0.0.1:8000``.
        key: An API key: ``ingest`` to send events, ``serve`` to read, ``admin`` for the
            catalogue, export and erasure (docs/api.md).
        batch_size: Events per request for :meth:`send` (the server takes at most 1,000).
        max_retries: Attempts after the first for network errors, 5xx and 429 answers.
        backoff: First retry delay in seconds; doubles each attempt (capped at 10 s).
        timeout: Seconds per request.
        transport: An ``httpx`` transport to use instead of the network's (e.g. an ASGI app).
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
        super().__init__(
            url,
            key,
            batch_size=batch_size,
            max_retries=max_retries,
            backoff=backoff,
            timeout=timeout,
        )
        self._http = httpx.Client(**self._options, transport=transport)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def _call(self, call: Call[T]) -> T:
        attempts = self._attempts()
        while True:
            try:
                response = self._http.send(call.request(self._http))
            except httpx.TransportError as exc:
                delay = attempts.failed(exc)
            else:
                answered = attempts.answered(response)
                if answered is None:
                    return call.parse(response)
                delay = answered
            time.sleep(delay)

    # -- events and the catalogue ---------------------------------------------------------
    def track(self, event: Mapping[str, Any]) -> EventReceipt:
        """Send one event as given; an event without ``event_id`` gets the server's keyed hash
        of its content, so a retry or a resend of it is a duplicate, never a second event.

        Returns:
            ``{"event_id", "status"}``: ``accepted``, or ``duplicate`` if already stored.

        Raises:
            ClientError: the event was rejected (the message says why) or the server is down.
        """
        return self._call(calls.event(event))

    def send(
        self,
        events: Iterable[Mapping[str, Any]],
        *,
        on_batch: Callable[[int], None] | None = None,
    ) -> SendSummary:
        """Send events in batches of :attr:`batch_size`, each retried until stored.

        Events are sent as given (the inputs are not modified). One without ``event_id`` is
        identified by the server with a keyed hash of its content (type, user, timestamp to the
        millisecond, item, data), so a retried batch resolves to the same ids, and sending the
        same events again counts them as ``duplicates``. Give events their own ``event_id``
        to keep two identical events apart.

        Args:
            events: Event mappings (docs/events.md); any iterable, consumed lazily.
            on_batch: Called with the number of events after each acknowledged batch
                (progress bars).

        Returns:
            Accepted, duplicate and rejected counts, and the rejected events' reasons.
        """
        summary = SendSummary()
        for batch in batches(events, self.batch_size):
            answer = self._call(calls.event_batch(batch))
            summary.add(answer)
            if on_batch is not None:
                on_batch(len(batch))
        return summary

    def put_items(self, items: Iterable[Mapping[str, Any]]) -> int:
        """Create or replace catalogue items (needs an ``admin`` key), 1,000 per request.

        Returns:
            The number of items created or updated.

        Raises:
            ClientError: the key may not write the catalogue (403), or items were rejected.
        """
        return sum(self._call(calls.item_batch(b)) for b in batches(items, calls.ITEM_BATCH))

    def put_users(self, users: Iterable[Mapping[str, Any]]) -> int:
        """Create or replace user attributes (needs an ``admin`` key): each mapping holds
        ``user_id`` and the attributes of ``PUT /v1/users/{user_id}``.

        Returns:
            The number of users written.

        Raises:
            ClientError: the key may not write users (403), or a user was rejected (422).
        """
        done = 0
        for user in users:
            self._call(calls.put_user(user))
            done += 1
        return done

    def health(self) -> bool:
        """Whether ``/readyz`` answers ok (one attempt, no retry)."""
        try:
            return self._http.get(calls.HEALTH_PATH).status_code == 200
        except httpx.TransportError:
            return False

    # -- reads (a ``serve`` key) -----------------------------------------------------------
    def recommendations(
        self,
        user_id: str,
        k: int = 10,
        *,
        category: str | None = None,
        exclude: Iterable[str] = (),
        device: str | None = None,
        hour: int | None = None,
        locale: str | None = None,
        network: str | None = None,
    ) -> Recommendations:
        """The user's top ``k`` items (1 to 100) with a reason each; each call is logged as
        an ``impression`` with the answer's ``list_id``.

        Args:
            user_id: Your user id (any string; it is sent percent-encoded).
            k: How many items.
            category: Only items of this category.
            exclude: Item ids to leave out.
            device: The context: ``mobile``, ``desktop``...
            hour: The user's local hour (0-23).
            locale: E.g. ``de-DE``.
            network: E.g. ``4g``, ``wifi``.

        Raises:
            ClientError: ``model_not_ready`` (503, not retried) before the first promotion;
                ``invalid_request`` (422) for a parameter out of range.
        """
        return self._call(
            calls.recommendations(
                user_id,
                k,
                category=category,
                exclude=exclude,
                device=device,
                hour=hour,
                locale=locale,
                network=network,
            )
        )

    def similar(self, item_id: str, k: int = 10) -> SimilarItems:
        """Items the production model relates most to ``item_id``.

        Raises:
            ClientError: ``unknown_item`` (404) when the model does not know the item yet.
        """
        return self._call(calls.similar(item_id, k))

    def rank(
        self,
        user_id: str,
        items: Iterable[Mapping[str, Any] | str],
        *,
        skill_level: str | None = None,
    ) -> Ranking:
        """Re-order up to 200 pieces of content for the user, best first.

        Args:
            user_id: Your user id.
            items: Content ids, or mappings with ``id`` and optionally ``category``, ``type``,
                ``created_at`` (a datetime, ISO 8601 text or epoch seconds) and ``variants``
                (text by skill level).
            skill_level: Overrides the user's stored ``skill_level``.
        """
        return self._call(calls.rank(user_id, items, skill_level))

    def feedback(
        self,
        user_id: str,
        item_id: str,
        kind: Literal["like", "dislike", "not_interested"],
        *,
        list_id: str | None = None,
    ) -> FeedbackReceipt:
        """Record ``like``, ``dislike`` or ``not_interested`` on an item (a not-interested or
        disliked item never comes back); ``list_id`` names the list it was shown in.

        Raises:
            ClientError: ``consent_required`` (403) when the user withdrew consent.
        """
        return self._call(calls.feedback(user_id, item_id, kind, list_id))

    def profile(self, user_id: str) -> Profile:
        """The user's features, top interests, segment, cohort and live session."""
        return self._call(calls.profile(user_id))

    def predictions(self, user_id: str) -> Predictions:
        """Calibrated churn and conversion probabilities with the top three reasons each.

        Raises:
            ClientError: ``not_found`` / ``unknown_user`` (404) when no predictor is in
                production or nothing is known about the user.
        """
        return self._call(calls.predictions(user_id))

    # -- data-subject rights (an ``admin`` key) ----------------------------------------------
    def export(self, user_id: str) -> ExportDocument:
        """Everything held about the user: the export document of docs/privacy.md."""
        return self._call(calls.export(user_id))

    def erase(self, user_id: str) -> ErasureReceipt:
        """Erase the user from every store; idempotent. Returns the receipt per store."""
        return self._call(calls.erase(user_id))
