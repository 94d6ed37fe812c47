"""The asyncio client (``httpx.AsyncClient``): :class:`~tastebud.client.Client`'s methods as
coroutines, built on the same requests, parsers and retry decisions."""

from __future__ import annotations

import asyncio
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

__all__ = ["AsyncClient"]

T = TypeVar("T")


class AsyncClient(ClientBase):
    """Asynchronous HTTP client for one Tastebud server: ``async with AsyncClient(url, key)
    as tb: await tb.recommendations(...)``. Same arguments, methods, answers, errors and retry
    rules as :class:`~tastebud.client.Client` (whose docstrings describe each method);
    retries wait with ``asyncio.sleep``, so other tasks run meanwhile.

    Args:
        url: Base URL, e.g. ``http://127.0.0.1:8000``.
        key: An API key (``ingest``, ``serve`` or ``admin``).
        batch_size: Events per request for :meth:`send` (at most 1,000).
        max_retries: Attempts after the first for network errors, 5xx and 429 answers.
        backoff: First retry delay in seconds; doubles each attempt (capped at 10 s).
        timeout: Seconds per request.
        transport: An ``httpx`` async transport to use instead of the network's.
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
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(
            url,
            key,
            batch_size=batch_size,
            max_retries=max_retries,
            backoff=backoff,
            timeout=timeout,
        )
        self._http = httpx.AsyncClient(**self._options, transport=transport)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    async def _call(self, call: Call[T]) -> T:
        attempts = self._attempts()
        while True:
            try:
                response = await self._http.send(call.request(self._http))
            except httpx.TransportError as exc:
                delay = attempts.failed(exc)
            else:
                answered = attempts.answered(response)
                if answered is None:
                    return call.parse(response)
                delay = answered
            await asyncio.sleep(delay)

    # -- events and the catalogue ---------------------------------------------------------
    async def track(self, event: Mapping[str, Any]) -> EventReceipt:
        """Send one event as given (see :meth:`Client.track`)."""
        return await self._call(calls.event(event))

    async def send(
        self,
        events: Iterable[Mapping[str, Any]],
        *,
        on_batch: Callable[[int], None] | None = None,
    ) -> SendSummary:
        """Send events in batches, each retried until stored (see :meth:`Client.send`)."""
        summary = SendSummary()
        for batch in batches(events, self.batch_size):
            answer = await self._call(calls.event_batch(batch))
            summary.add(answer)
            if on_batch is not None:
                on_batch(len(batch))
        return summary

    async def put_items(self, items: Iterable[Mapping[str, Any]]) -> int:
        """Create or replace catalogue items (see :meth:`Client.put_items`)."""
        done = 0
        for batch in batches(items, calls.ITEM_BATCH):
            done += await self._call(calls.item_batch(batch))
        return done

    async def put_users(self, users: Iterable[Mapping[str, Any]]) -> int:
        """Create or replace user attributes (see :meth:`Client.put_users`)."""
        done = 0
        for user in users:
            await self._call(calls.put_user(user))
            done += 1
        return done

    async def health(self) -> bool:
        """Whether ``/readyz`` answers ok (one attempt, no retry)."""
        try:
            return (await self._http.get(calls.HEALTH_PATH)).status_code == 200
        except httpx.TransportError:
            return False

    # -- reads (a ``serve`` key) -----------------------------------------------------------
    async def recommendations(
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
        """The user's top ``k`` items (see :meth:`Client.recommendations`)."""
        return await self._call(
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

    async def similar(self, item_id: str, k: int = 10) -> SimilarItems:
        """Items related to ``item_id`` (see :meth:`Client.similar`)."""
        return await self._call(calls.similar(item_id, k))

    async def rank(
        self,
        user_id: str,
        items: Iterable[Mapping[str, Any] | str],
        *,
        skill_level: str | None = None,
    ) -> Ranking:
        """Re-order content for the user (see :meth:`Client.rank`)."""
        return await self._call(calls.rank(user_id, items, skill_level))

    async def feedback(
        self,
        user_id: str,
        item_id: str,
        kind: Literal["like", "dislike", "not_interested"],
        *,
        list_id: str | None = None,
    ) -> FeedbackReceipt:
        """Record feedback on an item (see :meth:`Client.feedback`)."""
        return await self._call(calls.feedback(user_id, item_id, kind, list_id))

    async def profile(self, user_id: str) -> Profile:
        """The user's profile (see :meth:`Client.profile`)."""
        return await self._call(calls.profile(user_id))

    async def predictions(self, user_id: str) -> Predictions:
        """Churn and conversion probabilities (see :meth:`Client.predictions`)."""
        return await self._call(calls.predictions(user_id))

    # -- data-subject rights (an ``admin`` key) ----------------------------------------------
    async def export(self, user_id: str) -> ExportDocument:
        """Everything held about the user (see :meth:`Client.export`)."""
        return await self._call(calls.export(user_id))

    async def erase(self, user_id: str) -> ErasureReceipt:
        """Erase the user from every store (see :meth:`Client.erase`)."""
        return await self._call(calls.erase(user_id))
