"""Small SQL helpers shared by the store's modules."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from sqlalchemy import Connection, select

# SQLite accepts at most 32766 bound parameters per statement, PostgreSQL 65535.
IN_CHUNK = 900


def chunks(values: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    """Consecutive slices of ``values``, at most ``size`` long (bound-parameter limits)."""
    for start in range(0, len(values), size):
        yield values[start : start + size]


def existing_keys(conn: Connection, column: Any, keys: Sequence[str]) -> set[str]:
    """Which of ``keys`` are present in ``column`` (a primary key)."""
    found: set[str] = set()
    for part in chunks(keys, IN_CHUNK):
        found.update(conn.execute(select(column).where(column.in_(part))).scalars().all())
    return found
