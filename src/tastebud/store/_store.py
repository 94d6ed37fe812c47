"""The store: the engine and the event log (``events``, ``aliases``) on SQLite and PostgreSQL.

The other tables belong to their domains, which query them over :mod:`tastebud.store.tables`
on the :class:`Store` they are given (docs/architecture.md, "One way to reach the database").
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, TypedDict

import orjson
from pydantic import JsonValue
from sqlalchemy import Engine, Row, func, select, text, update
from sqlalchemy.exc import SQLAlchemyError

from tastebud.errors import Conflict, ServiceUnavailable
from tastebud.store import tables as t
from tastebud.store._browse import HistoryStore
from tastebud.store._group import GroupCommit
from tastebud.store.sql import IN_CHUNK, chunks

__all__ = ["EVENT_COLUMNS", "EventRow", "Store"]


class EventRow(TypedDict):
    """A row of the ``events`` table, as stored (pseudonymized and cleaned; encrypted fields
    still encrypted)."""

    id: int
    """Arrival order."""
    event_id: str
    event_type: str
    user_key: str
    anon_key: str | None
    session_id: str | None
    item_id: str | None
    ts_ms: int
    received_ms: int
    source: str
    schema_version: int
    data: JsonValue
    """The event's payload (a JSON object, or ``None``)."""
    context: JsonValue


def _event_row(r: Row[Any]) -> EventRow:
    return {
        "id": r.id,
        "event_id": r.event_id,
        "event_type": r.event_type,
        "user_key": r.user_key,
        "anon_key": r.anon_key,
        "session_id": r.session_id,
        "item_id": r.item_id,
        "ts_ms": r.ts_ms,
        "received_ms": r.received_ms,
        "source": r.source,
        "schema_version": r.schema_version,
        "data": r.data,
        "context": r.context,
    }


_PG_STAGE = """
CREATE TEMP TABLE IF NOT EXISTS tb_stage_events (
    event_id text, event_type text, user_key text, anon_key text, session_id text,
    item_id text, ts_ms bigint, received_ms bigint, source text, schema_version smallint,
    data jsonb, context jsonb
) ON COMMIT DELETE ROWS
"""
EVENT_COLUMNS = (
    "event_id",
    "event_type",
    "user_key",
    "anon_key",
    "session_id",
    "item_id",
    "ts_ms",
    "received_ms",
    "source",
    "schema_version",
    "data",
    "context",
)


class Store(HistoryStore):
    """The database of a process: its engine, and the event log's typed reads and writes.

    Every domain runs the queries of its own tables on ``store.engine``; the store itself
    owns only the event log: idempotent, group-committed inserts, counts, a user's history,
    and the aliases of identified visitors.

    Args:
        engine: From :func:`tastebud.store.make_engine`; the schema must be migrated.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._dialect = engine.dialect.name
        database = engine.url.database
        self._lock_path = (
            f"{database}.writelock"
            if self._dialect == "sqlite" and database and database != ":memory:"
            else None
        )
        self._group: GroupCommit[list[tuple[Any, ...]], set[str]] = GroupCommit(
            self._write_event_groups
        )

    def __repr__(self) -> str:
        return f"Store(dialect={self._dialect!r})"

    # -- health ---------------------------------------------------------------------------------
    def ping(self) -> None:
        """Raise :class:`ServiceUnavailable` unless the database answers ``SELECT 1``."""
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except SQLAlchemyError as exc:
            raise ServiceUnavailable("the database does not answer") from exc

    def dispose(self) -> None:
        """Close pooled connections."""
        self.engine.dispose()

    # -- events ---------------------------------------------------------------------------------
    def insert_events(self, rows: Sequence[Mapping[str, Any]]) -> set[str]:
        """Insert event rows in one transaction, skipping any whose ``event_id`` exists.

        This is the ingest hot path: inside a SQLAlchemy transaction it talks to the driver
        directly (JSON serialized once with orjson): SQLite takes the write lock, looks up which
        ids exist and ``executemany``-inserts the rest; PostgreSQL ``COPY``-s the batch into a
        staging table and inserts from it with ``ON CONFLICT (event_id) DO NOTHING RETURNING``.
        Concurrent calls in one process share one transaction (group commit, see ``_group``).

        Returns:
            The ``event_id`` of every row actually inserted; the others were duplicates.
        """
        return self.insert_event_rows(
            [
                (
                    r["event_id"],
                    r["event_type"],
                    r["user_key"],
                    r.get("anon_key"),
                    r.get("session_id"),
                    r.get("item_id"),
                    r["ts_ms"],
                    r["received_ms"],
                    r.get("source", "api"),
                    r.get("schema_version", 1),
                    r.get("data"),
                    r.get("context"),
                )
                for r in rows
            ]
        )

    def insert_event_rows(self, rows: Sequence[tuple[Any, ...]]) -> set[str]:
        """:meth:`insert_events` for rows already laid out as tuples in ``EVENT_COLUMNS`` order
        (``data`` and ``context`` as dicts or ``None``): the ingest path's way in."""
        if not rows:
            return set()
        dumps = orjson.dumps
        params = [
            r[:10]
            + (
                None if r[10] is None else dumps(r[10]).decode(),
                None if r[11] is None else dumps(r[11]).decode(),
            )
            for r in rows
        ]
        return self._group.submit(params)

    def insert_serialized_event_rows(self, rows: list[tuple[Any, ...]]) -> set[str]:
        """:meth:`insert_event_rows` for rows whose ``data`` and ``context`` are already JSON
        text (or ``None``), as ingest builds them; ``rows`` is handed over, not copied."""
        if not rows:
            return set()
        return self._group.submit(rows)

    def _write_event_groups(self, groups: Sequence[list[tuple[Any, ...]]]) -> list[set[str]]:
        """Write the rows of several callers in one transaction; each gets its inserted ids.

        An id repeated across callers belongs to the first one; the later ones see a duplicate.
        """
        owner: dict[str, int] = {}
        rows: list[tuple[Any, ...]] = []
        for g, params in enumerate(groups):
            for p in params:
                if p[0] not in owner:
                    owner[p[0]] = g
                    rows.append(p)
        with self._writer_lock(), self.engine.begin() as conn:
            dbapi: Any = conn.connection.dbapi_connection
            assert dbapi is not None
            if self._dialect == "postgresql":
                if not conn.connection.info.get("tb_stage"):
                    dbapi.execute(_PG_STAGE)
                    conn.connection.info["tb_stage"] = True
                inserted = self._insert_events_pg(dbapi, rows)
            else:
                inserted = self._insert_events_sqlite(dbapi, rows)
        results: list[set[str]] = [set() for _ in groups]
        for event_id in inserted:
            results[owner[event_id]].add(event_id)
        return results

    @contextmanager
    def _writer_lock(self) -> Iterator[None]:
        """On SQLite, one ingest writer at a time across processes, queued in the kernel.

        SQLite's own busy handler polls with growing sleeps (1, 2, 5, 10... ms) while another
        process holds the write lock; with several API processes that idles the writers. An
        ``flock`` on a file beside the database wakes the next writer the moment the lock is
        free. (The busy timeout still guards every other writer.)
        """
        if self._lock_path is None:
            yield
            return
        fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the lock

    @staticmethod
    def _insert_events_sqlite(dbapi: Any, params: list[tuple[Any, ...]]) -> set[str]:
        # Take the write lock first (BEGIN IMMEDIATE) so that the duplicate check and the
        # insert see the same state even with several API processes on one file.
        if not dbapi.in_transaction:
            dbapi.execute("BEGIN IMMEDIATE")
        ids = [p[0] for p in params]
        existing: set[str] = set()
        for part in chunks(ids, IN_CHUNK):
            marks = ", ".join("?" * len(part))
            rows = dbapi.execute(f"SELECT event_id FROM events WHERE event_id IN ({marks})", part)
            existing.update(r[0] for r in rows)
        fresh = [p for p in params if p[0] not in existing]
        if fresh:
            marks = ", ".join("?" * len(EVENT_COLUMNS))
            dbapi.executemany(
                f"INSERT INTO events ({', '.join(EVENT_COLUMNS)}) VALUES ({marks}) "
                "ON CONFLICT (event_id) DO NOTHING",
                fresh,
            )
        return {p[0] for p in fresh}

    @staticmethod
    def _insert_events_pg(dbapi: Any, params: list[tuple[Any, ...]]) -> set[str]:
        # COPY into the connection's staging table (created once per connection, emptied at
        # commit), then one INSERT ... SELECT that skips existing ids and returns the inserted.
        columns = ", ".join(EVENT_COLUMNS)
        with dbapi.cursor() as cur:
            with cur.copy(f"COPY tb_stage_events ({columns}) FROM STDIN") as copy:
                for row in params:
                    copy.write_row(row)
            cur.execute(
                f"INSERT INTO events ({columns}) SELECT {columns} FROM tb_stage_events "
                "ON CONFLICT (event_id) DO NOTHING RETURNING event_id"
            )
            return {r[0] for r in cur.fetchall()}

    def count_events(self, *, user_key: str | None = None, event_type: str | None = None) -> int:
        """Number of stored events, optionally for one user and/or type."""
        q = select(func.count()).select_from(t.events)
        if user_key is not None:
            q = q.where(t.events.c.user_key == user_key)
        if event_type is not None:
            q = q.where(t.events.c.event_type == event_type)
        with self.engine.connect() as conn:
            return int(conn.execute(q).scalar_one())

    def events_for_user(self, user_key: str) -> list[EventRow]:
        """Every event of a user in time order (as stored: pseudonymized and cleaned)."""
        q = (
            select(t.events)
            .where(t.events.c.user_key == user_key)
            .order_by(t.events.c.ts_ms, t.events.c.id)
        )
        with self.engine.connect() as conn:
            return [_event_row(r) for r in conn.execute(q)]

    def get_event(self, event_id: str) -> EventRow | None:
        """One stored event by its id."""
        with self.engine.connect() as conn:
            row = conn.execute(select(t.events).where(t.events.c.event_id == event_id)).first()
        return None if row is None else _event_row(row)

    # -- aliases --------------------------------------------------------------------------------
    def alias_targets(self, anon_keys: Iterable[str]) -> dict[str, str]:
        """For anonymous pseudonyms that were identified, the user pseudonym they merged into."""
        keys = sorted(set(anon_keys))
        out: dict[str, str] = {}
        if not keys:
            return out
        with self.engine.connect() as conn:
            for part in chunks(keys, IN_CHUNK):
                q = select(t.aliases.c.anon_key, t.aliases.c.user_key).where(
                    t.aliases.c.anon_key.in_(part)
                )
                out.update({a: u for a, u in conn.execute(q)})
        return out

    def aliases_since(self, since_ms: int) -> list[tuple[str, str, int]]:
        """Visitors ``(anon_key, user_key, created_ms)`` who identified at or after
        ``since_ms`` as users the store did not know yet (sign-ups): experiments keep them in
        the variant their anonymous visits had. A known user identifying on a new device is
        left out (they keep their own variants)."""
        a = t.aliases
        q = (
            select(a.c.anon_key, a.c.user_key, a.c.created_ms)
            .where(a.c.created_ms >= since_ms, a.c.first_identity.is_not(False))
            .order_by(a.c.created_ms)
        )
        with self.engine.connect() as conn:
            return [(r.anon_key, r.user_key, int(r.created_ms)) for r in conn.execute(q)]

    def merge_alias(self, anon_key: str, user_key: str, now_ms: int) -> tuple[int, bool]:
        """Attach an anonymous history to a user.

        Every event recorded under the anonymous pseudonym (and not yet under a user) moves to
        ``user_key``; later anonymous-only events of that visitor are attributed on ingest.

        Returns:
            (events moved, whether the alias is new). Repeating the call is harmless.

        Raises:
            Conflict: the anonymous id is already merged into a different user.
        """
        with self.engine.begin() as conn:
            existing = conn.execute(
                select(t.aliases.c.user_key).where(t.aliases.c.anon_key == anon_key)
            ).scalar_one_or_none()
            if existing is not None and existing != user_key:
                raise Conflict("this anonymous id is already merged into another user")
            created = existing is None
            if created:
                # Whether the user was known before this visitor identified (an existing user
                # on a new device keeps their own experiment variants; a sign-up keeps the
                # anonymous visitor's).
                known = conn.execute(
                    select(t.events.c.id).where(t.events.c.user_key == user_key).limit(1)
                ).first()
                conn.execute(
                    t.aliases.insert().values(
                        anon_key=anon_key,
                        user_key=user_key,
                        created_ms=now_ms,
                        first_identity=known is None,
                    )
                )
            moved = conn.execute(
                update(t.events)
                .where(t.events.c.anon_key == anon_key, t.events.c.user_key == anon_key)
                .values(user_key=user_key)
            ).rowcount
            return int(moved or 0), created
