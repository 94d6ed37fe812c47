"""The event log's browsing reads: one user's history a page at a time, and the pseudonyms
that have events (with their first and last event time), for the catalogue's user listing.

Every listing is keyset-paginated (``WHERE key > last ORDER BY key LIMIT n + 1``, never
``OFFSET``): a page costs an index range scan whatever its depth, and rows written while a
client walks the list never make it skip or repeat an entry. A base class of
:class:`tastebud.store.Store`, which sets the attributes declared here.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from pydantic import JsonValue
from sqlalchemy import Connection, Engine, and_, func, or_, select

from tastebud.store import tables as t
from tastebud.store.sql import as_json

__all__ = ["EventKey", "EventSpan", "HistoryStore", "Page", "StoredEvent", "page_of"]

T = TypeVar("T")

EventKey = tuple[int, int]
"""Where a user's history is in its newest-first order: (event time in ms, arrival id)."""


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a keyset-paginated listing (every domain's listings return one)."""

    entries: list[T]
    """At most the page size, in the listing's order."""
    more: bool
    """Whether entries follow the last one (continue after its key)."""


def page_of(rows: Sequence[T], limit: int) -> Page[T]:
    """The page of ``limit`` entries from ``rows``, read with ``LIMIT limit + 1``.

    >>> page_of([1, 2, 3], 2)
    Page(entries=[1, 2], more=True)
    """
    return Page(list(rows[:limit]), len(rows) > limit)


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """One stored event (pseudonymized and cleaned; encrypted fields still encrypted)."""

    id: int
    """Arrival order in the events table (the tie-break of equal event times)."""
    event_id: str
    event_type: str
    ts_ms: int
    received_ms: int
    session_id: str | None
    item_id: str | None
    data: dict[str, JsonValue] | None
    context: dict[str, JsonValue] | None
    source: str

    @property
    def key(self) -> EventKey:
        """The event's position in a newest-first history."""
        return (self.ts_ms, self.id)


@dataclass(frozen=True, slots=True)
class EventSpan:
    """How many events are stored under a pseudonym, and the first and last event time."""

    user_key: str
    count: int
    first_ms: int | None
    """``None``: no events."""
    last_ms: int | None


class HistoryStore:
    """A user's history and the pseudonyms with events (see :class:`tastebud.store.Store`)."""

    engine: Engine

    @staticmethod
    def _history_keys(conn: Connection, user_key: str) -> list[str]:
        """The user's pseudonym and the anonymous pseudonyms merged into it (identify)."""
        a = t.aliases
        merged = conn.execute(select(a.c.anon_key).where(a.c.user_key == user_key)).scalars()
        return [user_key, *sorted(merged)]

    def history_span(self, user_key: str) -> EventSpan:
        """The span of a user's history as :meth:`browse_user_events` walks it (the events
        under the user's pseudonym and under the anonymous pseudonyms merged into it)."""
        e = t.events
        with self.engine.connect() as conn:
            keys = self._history_keys(conn, user_key)
            first, last, n = conn.execute(
                select(func.min(e.c.ts_ms), func.max(e.c.ts_ms), func.count()).where(
                    e.c.user_key.in_(keys)
                )
            ).one()
        count = int(n)
        return EventSpan(
            user_key,
            count,
            None if count == 0 else int(first),
            None if count == 0 else int(last),
        )

    def event_spans(self, *, limit: int, after: str | None = None) -> Page[EventSpan]:
        """The pseudonyms with stored events, in order, with their spans.

        One ordered walk of the ``(user_key, ts_ms)`` index, grouped by ``user_key`` and stopped
        after ``limit + 1`` keys (the count reads each page key's index range once).

        Args:
            limit: Page size.
            after: Continue after this pseudonym (the last one of the previous page).
        """
        e = t.events
        q = (
            select(
                e.c.user_key,
                func.count().label("n"),
                func.min(e.c.ts_ms).label("first_ms"),
                func.max(e.c.ts_ms).label("last_ms"),
            )
            .group_by(e.c.user_key)
            .order_by(e.c.user_key)
            .limit(limit + 1)
        )
        if after is not None:
            q = q.where(e.c.user_key > after)
        with self.engine.connect() as conn:
            rows = [
                EventSpan(r.user_key, int(r.n), int(r.first_ms), int(r.last_ms))
                for r in conn.execute(q)
            ]
        return page_of(rows, limit)

    def browse_user_events(
        self, user_key: str, *, limit: int, after: EventKey | None = None
    ) -> Page[StoredEvent]:
        """A user's stored events, newest first (event time, then arrival order).

        The history is every event stored under the user's pseudonym or under an anonymous
        pseudonym merged into it (events of an identified visitor are moved to the user, and
        later ones attributed to it, so the second part only holds what arrived during a
        merge). Each pseudonym is one backward walk of the ``(user_key, ts_ms)`` index (on
        SQLite the index ends with the row id, so ``id`` needs no sort; PostgreSQL sorts only
        the rows of equal time), merged here.

        Args:
            user_key: The user's pseudonym.
            limit: Page size.
            after: Continue after this key (the last event of the previous page).
        """
        e = t.events
        cols = (
            e.c.id,
            e.c.event_id,
            e.c.event_type,
            e.c.ts_ms,
            e.c.received_ms,
            e.c.session_id,
            e.c.item_id,
            e.c.data,
            e.c.context,
            e.c.source,
        )
        walks: list[list[StoredEvent]] = []
        with self.engine.connect() as conn:
            for key in self._history_keys(conn, user_key):
                q = (
                    select(*cols)
                    .where(e.c.user_key == key)
                    .order_by(e.c.ts_ms.desc(), e.c.id.desc())
                    .limit(limit + 1)
                )
                if after is not None:
                    ts, last = after
                    # Spelled so that the index serves a range on ts_ms (a row comparison
                    # ``(ts_ms, id) < (ts, last)`` is not an index condition on PostgreSQL).
                    q = q.where(
                        e.c.ts_ms <= ts, or_(e.c.ts_ms < ts, and_(e.c.ts_ms == ts, e.c.id < last))
                    )
                walks.append(
                    [
                        StoredEvent(
                            id=int(r.id),
                            event_id=r.event_id,
                            event_type=r.event_type,
                            ts_ms=int(r.ts_ms),
                            received_ms=int(r.received_ms),
                            session_id=r.session_id,
                            item_id=r.item_id,
                            data=as_json(r.data),
                            context=as_json(r.context),
                            source=r.source,
                        )
                        for r in conn.execute(q)
                    ]
                )
        # Each walk is newest first; rows belong to one pseudonym each, so no duplicates.
        merged = heapq.merge(*walks, key=lambda ev: ev.key, reverse=True)
        return page_of(list(itertools.islice(merged, limit + 1)), limit)
