"""SQL helpers shared by every domain's queries: bound-parameter limits, dialect differences.

Each domain writes the queries of its own tables (docs/architecture.md, "One way to reach the
database"); what they all need to do the same way on SQLite and PostgreSQL lives here.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import orjson
from sqlalchemy import Connection, Table, select
from sqlalchemy.dialects import postgresql, sqlite

__all__ = [
    "IN_CHUNK",
    "as_json",
    "chunks",
    "existing_keys",
    "placeholder",
    "upsert",
]

# SQLite accepts at most 32766 bound parameters per statement, PostgreSQL 65535.
IN_CHUNK = 900
"""Most values bound in one ``IN (...)`` list."""


def chunks(values: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    """Consecutive slices of ``values``, at most ``size`` long (bound-parameter limits).

    >>> [list(c) for c in chunks([1, 2, 3], 2)]
    [[1, 2], [3]]
    """
    for start in range(0, len(values), size):
        yield values[start : start + size]


def as_json(value: Any) -> Any:
    """A JSON column's value as read: the drivers hand back parsed values, but the ingest hot
    path writes JSON text, so be lenient with text.

    >>> as_json('{"a": 1}'), as_json({"a": 1}), as_json(None)
    ({'a': 1}, {'a': 1}, None)
    """
    return orjson.loads(value) if isinstance(value, str | bytes) else value


def existing_keys(conn: Connection, column: Any, keys: Sequence[str]) -> set[str]:
    """Which of ``keys`` are present in ``column`` (a primary key)."""
    found: set[str] = set()
    for part in chunks(keys, IN_CHUNK):
        found.update(conn.execute(select(column).where(column.in_(part))).scalars().all())
    return found


def upsert(dialect: str, table: Table) -> Any:
    """An ``INSERT`` into ``table`` with the dialect's ``on_conflict_do_update`` (both dialects
    spell it alike, but each has its own construct).

    Args:
        dialect: ``engine.dialect.name``: ``postgresql`` or ``sqlite``.
        table: The table written.
    """
    if dialect == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def placeholder(dialect: str) -> str:
    """The driver's bound-parameter mark, for hot lookups written as plain SQL (no statement
    building and compilation per call): psycopg ``%s``, sqlite3 ``?``.

    >>> placeholder("postgresql"), placeholder("sqlite")
    ('%s', '?')
    """
    return "%s" if dialect == "postgresql" else "?"
