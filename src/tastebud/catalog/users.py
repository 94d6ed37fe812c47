"""The ``users`` table: user attributes by pseudonym, and what is stored about a pseudonym (its
attributes and, from the event log, its events)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import JsonValue
from sqlalchemy import func, select, update
from typing_extensions import TypedDict  # pydantic needs it before Python 3.12

from tastebud.store import EventSpan, Page, Store, page_of
from tastebud.store import tables as t
from tastebud.store.sql import as_json, existing_keys, upsert

__all__ = ["UserRow", "UserSummary", "Users"]


class UserRow(TypedDict):
    """A row of the ``users`` table, its JSON column decoded."""

    user_key: str
    attributes: dict[str, JsonValue]
    """As stored (encrypted fields still encrypted)."""
    created_ms: int
    updated_ms: int


@dataclass(frozen=True, slots=True)
class UserSummary:
    """What is stored about one pseudonym: its attributes row and its events."""

    user_key: str
    attributes: dict[str, JsonValue] | None
    """As stored (encrypted fields still encrypted); ``None``: no attributes row."""
    created_ms: int | None
    updated_ms: int | None
    first_event_ms: int | None
    last_event_ms: int | None
    event_count: int


def _summary(user_key: str, row: Any, span: EventSpan | None) -> UserSummary:
    return UserSummary(
        user_key=user_key,
        attributes=None if row is None else as_json(row.attributes),
        created_ms=None if row is None else int(row.created_ms),
        updated_ms=None if row is None else int(row.updated_ms),
        first_event_ms=None if span is None else span.first_ms,
        last_event_ms=None if span is None else span.last_ms,
        event_count=0 if span is None else span.count,
    )


class Users:
    """Reads and writes of user attributes, by pseudonym.

    Args:
        store: The database (its event log gives the event statistics of summaries).
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        self._dialect = store.engine.dialect.name

    def __repr__(self) -> str:
        return f"Users({self.store!r})"

    def put(self, user_key: str, attributes: Mapping[str, Any], now_ms: int) -> bool:
        """Create or replace a user's attributes. Returns whether the user is new."""
        u = t.users
        with self.store.engine.begin() as conn:
            exists = conn.execute(select(u.c.user_key).where(u.c.user_key == user_key)).first()
            if exists:
                conn.execute(
                    update(u)
                    .where(u.c.user_key == user_key)
                    .values(attributes=dict(attributes), updated_ms=now_ms)
                )
                return False
            stmt = upsert(self._dialect, u).values(
                user_key=user_key, attributes=dict(attributes), created_ms=now_ms, updated_ms=now_ms
            )
            conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=["user_key"],
                    set_={"attributes": stmt.excluded.attributes, "updated_ms": now_ms},
                )
            )
            return True

    def put_many(self, attributes: Mapping[str, Mapping[str, Any]], now_ms: int) -> set[str]:
        """Create or replace many users' attributes in one transaction.

        Returns:
            The pseudonyms of the users that did not exist before.
        """
        if not attributes:
            return set()
        keys = list(attributes)
        with self.store.engine.begin() as conn:
            existing = existing_keys(conn, t.users.c.user_key, keys)
            stmt = upsert(self._dialect, t.users)
            stmt = stmt.on_conflict_do_update(
                index_elements=["user_key"],
                set_={"attributes": stmt.excluded.attributes, "updated_ms": now_ms},
            )
            conn.execute(
                stmt,
                [
                    {
                        "user_key": k,
                        "attributes": dict(v),
                        "created_ms": now_ms,
                        "updated_ms": now_ms,
                    }
                    for k, v in attributes.items()
                ],
            )
        return set(keys) - existing

    def get(self, user_key: str) -> UserRow | None:
        """A user's attributes row, or ``None``."""
        with self.store.engine.connect() as conn:
            row = conn.execute(select(t.users).where(t.users.c.user_key == user_key)).first()
        if row is None:
            return None
        return UserRow(
            user_key=row.user_key,
            attributes=as_json(row.attributes) or {},
            created_ms=int(row.created_ms),
            updated_ms=int(row.updated_ms),
        )

    def count(self) -> int:
        """Number of users with stored attributes."""
        with self.store.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(t.users)).scalar_one())

    def browse(self, *, limit: int, after: str | None = None) -> Page[UserSummary]:
        """Every pseudonym known, from the users table or from events, in order.

        Two ordered index walks, each stopping after ``limit + 1`` keys: the users table by
        primary key, and the event log's pseudonyms (:meth:`tastebud.store.Store.event_spans`, which
        also gives their first and last event time and count). The page is the first ``limit``
        keys of their union: any page key with events is among the event walk's keys, and any
        with attributes among the users walk's, so nothing needs a second look.

        Args:
            limit: Page size.
            after: Continue after this pseudonym (the last one of the previous page).
        """
        u = t.users
        q = select(u).order_by(u.c.user_key).limit(limit + 1)
        if after is not None:
            q = q.where(u.c.user_key > after)
        with self.store.engine.connect() as conn:
            users = page_of(conn.execute(q).all(), limit)
        spans = self.store.event_spans(limit=limit, after=after)
        attrs = {r.user_key: r for r in users.entries}
        stats = {s.user_key: s for s in spans.entries}
        keys = sorted(attrs.keys() | stats.keys())
        # Past the page: more keys than a page, or a walk that stopped before its end.
        more = len(keys) > limit or users.more or spans.more
        return Page([_summary(k, attrs.get(k), stats.get(k)) for k in keys[:limit]], more)

    def summary(self, user_key: str) -> UserSummary | None:
        """Attributes and event statistics of one user, over the user's history as
        :meth:`tastebud.store.Store.browse_user_events` walks it; ``None`` when nothing at all
        is stored."""
        with self.store.engine.connect() as conn:
            row = conn.execute(select(t.users).where(t.users.c.user_key == user_key)).first()
        span = self.store.history_span(user_key)
        if row is None and span.count == 0:
            return None
        return _summary(user_key, row, span if span.count else None)
