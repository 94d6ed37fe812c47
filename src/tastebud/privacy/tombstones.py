"""Erasure tombstones: when each erased user was erased, so that a replayed old event of theirs
is not taken again. A tombstone is an HMAC of the pseudonym under its own derivation, with the
time and the request id: no personal data."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from sqlalchemy import Connection, update

from tastebud.store import Store
from tastebud.store import tables as t
from tastebud.store.sql import IN_CHUNK, chunks, placeholder

__all__ = ["Tombstones", "erasure_stamp"]


def erasure_stamp(conn: Connection) -> tuple[int, int]:
    """The tombstones' count and newest erasure time: a version of the table that every
    erasure changes (a first erasure adds a row, a repeated one moves its time forward).

    One scan of the tombstones, one row per erased user.
    """
    n, newest = conn.exec_driver_sql("SELECT count(*), max(erased_ms) FROM tombstones").one()
    return int(n), int(newest or 0)


class Tombstones:
    """The erasure tombstones (``tombstones``).

    Args:
        store: The database.
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        self._mark = placeholder(store.engine.dialect.name)
        self._cache: dict[str, int | None] = {}
        self._version: tuple[int, int] | None = None

    def __repr__(self) -> str:
        return f"Tombstones({self.store!r})"

    def erased_at(
        self, user_keys: Iterable[str], tombstone: Callable[[str], str]
    ) -> dict[str, int]:
        """When each of ``user_keys`` was erased (looked up by its tombstone HMAC,
        ``tombstone(key)``); absent: never.

        Cached per version of the table (:func:`erasure_stamp`: one scan per call): this runs
        on every ingest batch, and while no user was ever erased it computes no HMAC at all.
        The version is the count *and* the newest time, so that a repeated erasure (which
        moves a tombstone's time, not the count) made in another process is seen here too.
        """
        users = set(user_keys)
        if not users:
            return {}
        with self.store.engine.connect() as conn:
            version = erasure_stamp(conn)
            if version[0] == 0:
                return {}
            by_tomb = {tombstone(u): u for u in users}
            keys = set(by_tomb)
            if version != self._version:
                self._cache = {}
                self._version = version
            missing = sorted(keys.difference(self._cache))
            m = self._mark
            for part in chunks(missing, IN_CHUNK):
                sql = (
                    f"SELECT tomb_key, erased_ms FROM tombstones "
                    f"WHERE tomb_key IN ({', '.join([m] * len(part))})"
                )
                found: dict[str, int] = {
                    str(k): int(v) for k, v in conn.exec_driver_sql(sql, tuple(part)).all()
                }
                for k in part:
                    self._cache[k] = found.get(k)
        return {by_tomb[k]: int(v) for k in keys if (v := self._cache.get(k)) is not None}

    def add(self, tomb_key: str, erased_ms: int, request_id: str) -> None:
        """Record an erasure (idempotent: a repeated erasure moves the time forward)."""
        with self.store.engine.begin() as conn:
            q = update(t.tombstones).where(t.tombstones.c.tomb_key == tomb_key)
            done = conn.execute(q.values(erased_ms=erased_ms, request_id=request_id)).rowcount
            if not done:
                conn.execute(
                    t.tombstones.insert().values(
                        tomb_key=tomb_key, erased_ms=erased_ms, request_id=request_id
                    )
                )
