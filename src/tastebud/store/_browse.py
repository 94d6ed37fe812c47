"""The store's browsing reads: the catalogue, the users and one user's history, a page at a time.

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
from typing import Any, Generic, TypeVar

import orjson
from sqlalchemy import Connection, Engine, String, and_, exists, func, literal, or_, select

from tastebud.store import tables as t

__all__ = ["BrowseStore", "EventKey", "Page", "StoredEvent", "UserSummary"]

T = TypeVar("T")

EventKey = tuple[int, int]
"""Where a user's history is in its newest-first order: (event time in ms, arrival id)."""


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a listing."""

    entries: list[T]
    """At most the page size, in the listing's order."""
    more: bool
    """Whether entries follow the last one (continue after its key)."""


@dataclass(frozen=True, slots=True)
class UserSummary:
    """What is stored about one pseudonym: its attributes row and its events."""

    user_key: str
    attributes: dict[str, Any] | None
    """As stored (encrypted fields still encrypted); ``None``: no attributes row."""
    created_ms: int | None
    updated_ms: int | None
    first_event_ms: int | None
    last_event_ms: int | None
    event_count: int


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
    data: dict[str, Any] | None
    context: dict[str, Any] | None
    source: str

    @property
    def key(self) -> EventKey:
        """The event's position in a newest-first history."""
        return (self.ts_ms, self.id)


def _json(value: Any) -> Any:
    # Written as JSON text by the ingest hot path; drivers hand back parsed values, but be
    # lenient with text (as export is).
    return orjson.loads(value) if isinstance(value, str | bytes) else value


def _page(rows: Sequence[T], limit: int) -> Page[T]:
    return Page(list(rows[:limit]), len(rows) > limit)


class BrowseStore:
    """Paginated listings of items, users and one user's events (see
    :class:`tastebud.store.Store`)."""

    engine: Engine
    _dialect: str

    # -- items ----------------------------------------------------------------------------------
    def browse_items(
        self, *, limit: int, after: str | None = None, category: str | None = None
    ) -> Page[dict[str, Any]]:
        """Catalogue items in item-id order (the database's collation), hidden ones included.

        Args:
            limit: Page size.
            after: Continue after this item id (the last one of the previous page).
            category: Only items whose ``categories`` contain it (the primary category is
                always among them).
        """
        i = t.items
        q = select(i).order_by(i.c.item_id).limit(limit + 1)
        if after is not None:
            q = q.where(i.c.item_id > after)
        if category is not None:
            q = q.where(self._has_category(category))
        with self.engine.connect() as conn:
            rows = [dict(r._mapping) for r in conn.execute(q)]
        for row in rows:
            row["categories"] = _json(row["categories"])
            row["attributes"] = _json(row["attributes"])
        return _page(rows, limit)

    def _has_category(self, category: str) -> Any:
        # The walk follows the primary key; the category test is a cheap per-row check (JSON
        # containment on PostgreSQL, json_each on SQLite). A rare category scans further for a
        # full page, but never more than the table.
        categories = t.items.c.categories
        if self._dialect == "postgresql":
            wanted = func.jsonb_build_array(literal(category, String))
            return categories.op("@>", is_comparison=True)(wanted)
        each = func.json_each(categories).table_valued("value")
        return exists(select(literal(1)).select_from(each).where(each.c.value == category))

    # -- users ----------------------------------------------------------------------------------
    def browse_users(self, *, limit: int, after: str | None = None) -> Page[UserSummary]:
        """Every pseudonym the store knows, from the users table or from events, in order.

        Two ordered index walks, each stopping after ``limit + 1`` keys: the users table by
        primary key, and the events grouped by ``user_key`` along ``(user_key, ts_ms)`` (which
        also gives each user's first and last event time; the count reads each page user's
        index range once). The page is the first ``limit`` keys of their union: any page key
        with events is among the events walk's keys, and any with attributes among the users
        walk's, so nothing needs a second look.

        Args:
            limit: Page size.
            after: Continue after this pseudonym (the last one of the previous page).
        """
        u, e = t.users, t.events
        users_q = select(u).order_by(u.c.user_key).limit(limit + 1)
        events_q = (
            select(
                e.c.user_key,
                func.min(e.c.ts_ms).label("first_ms"),
                func.max(e.c.ts_ms).label("last_ms"),
                func.count().label("n"),
            )
            .group_by(e.c.user_key)
            .order_by(e.c.user_key)
            .limit(limit + 1)
        )
        if after is not None:
            users_q = users_q.where(u.c.user_key > after)
            events_q = events_q.where(e.c.user_key > after)
        with self.engine.connect() as conn:
            attrs = {r.user_key: r for r in conn.execute(users_q)}
            stats = {r.user_key: r for r in conn.execute(events_q)}
        keys = sorted(attrs.keys() | stats.keys())[: limit + 1]
        out = []
        for key in keys:
            a, s = attrs.get(key), stats.get(key)
            out.append(
                UserSummary(
                    user_key=key,
                    attributes=None if a is None else _json(a.attributes),
                    created_ms=None if a is None else int(a.created_ms),
                    updated_ms=None if a is None else int(a.updated_ms),
                    first_event_ms=None if s is None else int(s.first_ms),
                    last_event_ms=None if s is None else int(s.last_ms),
                    event_count=0 if s is None else int(s.n),
                )
            )
        return _page(out, limit)

    def user_summary(self, user_key: str) -> UserSummary | None:
        """Attributes and event statistics of one user, over the user's history as
        :meth:`browse_user_events` walks it; ``None`` when nothing at all is stored."""
        u, e = t.users, t.events
        with self.engine.connect() as conn:
            row = conn.execute(select(u).where(u.c.user_key == user_key)).first()
            keys = self._history_keys(conn, user_key)
            stats = conn.execute(
                select(func.min(e.c.ts_ms), func.max(e.c.ts_ms), func.count()).where(
                    e.c.user_key.in_(keys)
                )
            ).one()
        count = int(stats[2])
        if row is None and count == 0:
            return None
        return UserSummary(
            user_key=user_key,
            attributes=None if row is None else _json(row.attributes),
            created_ms=None if row is None else int(row.created_ms),
            updated_ms=None if row is None else int(row.updated_ms),
            first_event_ms=None if count == 0 else int(stats[0]),
            last_event_ms=None if count == 0 else int(stats[1]),
            event_count=count,
        )

    # -- one user's events ----------------------------------------------------------------------
    @staticmethod
    def _history_keys(conn: Connection, user_key: str) -> list[str]:
        """The user's pseudonym and the anonymous pseudonyms merged into it (identify)."""
        a = t.aliases
        merged = conn.execute(select(a.c.anon_key).where(a.c.user_key == user_key)).scalars()
        return [user_key, *sorted(merged)]

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
                            data=_json(r.data),
                            context=_json(r.context),
                            source=r.source,
                        )
                        for r in conn.execute(q)
                    ]
                )
        # Each walk is newest first; rows belong to one pseudonym each, so no duplicates.
        merged = heapq.merge(*walks, key=lambda ev: ev.key, reverse=True)
        return _page(list(itertools.islice(merged, limit + 1)), limit)
