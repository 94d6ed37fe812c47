"""Stored consent: each user's decision per purpose (``consents``) and every decision in the
order it was made (``consent_log``), read by ingest (cached states), by the personalization gate
(a snapshot, then only the new log rows) and by the consent routes."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, select

from tastebud.privacy.tombstones import erasure_stamp
from tastebud.store import Store
from tastebud.store import tables as t
from tastebud.store.sql import IN_CHUNK, chunks, placeholder, upsert

__all__ = ["ConsentLog", "ConsentMark", "ConsentRead", "LogRow"]

# A transaction-scoped PostgreSQL advisory lock taken by every consent write, so that consent-log
# ids are handed out in commit order (see ``ConsentLog.since``). Any fixed number will do; an
# advisory lock, unlike a table lock, does not conflict with autovacuum.
_CONSENT_LOG_LOCK = 7_462_636_153
_LOG_COLUMNS = "id, user_key, purpose, granted, at_ms"
_STATES_MAX = 500_000

LogRow = tuple[str, str, bool, int]
"""A consent-log row's content: user key, purpose, decision, time (ms)."""


@dataclass(frozen=True)
class ConsentMark:
    """How far a reader of the consent log has read (see :meth:`ConsentLog.since`)."""

    last_id: int
    """The id of the newest log row read (0: the log was empty)."""
    last_row: LogRow | None
    """That row's content. SQLite gives the highest id of a deleted row to the next row, so the
    id alone would not show that the row was erased and the id handed out again."""
    erasures: tuple[int, int]
    """The erasure tombstones' count and newest time when the mark was taken: every erasure,
    which deletes the user's consent-log rows, changes it."""


@dataclass(frozen=True)
class ConsentRead:
    """Consent decisions for one purpose, as read from the database."""

    decisions: dict[str, bool]
    """User key -> decision: every stored decision (a snapshot), or the newest decision of each
    user with a new log row (changes since a mark)."""
    mark: ConsentMark
    """Where the next :meth:`ConsentLog.since` continues."""
    rows: int
    """How many rows were read: stored decisions (a snapshot) or new log rows (changes)."""


def _log_row(row: Any) -> LogRow:
    return (str(row[1]), str(row[2]), bool(row[3]), int(row[4]))


class ConsentLog:
    """Consent decisions and their log.

    Args:
        store: The database.
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        self._dialect = store.engine.dialect.name
        self._mark = placeholder(self._dialect)
        # purpose -> user_key -> stored decision or None, valid for one version of all consent
        # state (``_stamp``).
        self._states: dict[str, dict[str, bool | None]] = {}
        self._version: object = None

    def __repr__(self) -> str:
        return f"ConsentLog({self.store!r})"

    def record(self, user_key: str, changes: Mapping[str, bool], now_ms: int) -> None:
        """Store decisions (one per purpose) and append them to the log, in one transaction."""
        if not changes:
            return
        with self.store.engine.begin() as conn:
            if self._dialect == "postgresql":
                # Serialize consent writes: ids taken in commit order (``since``).
                conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_CONSENT_LOG_LOCK})")
            for purpose, granted in changes.items():
                stmt = upsert(self._dialect, t.consents).values(
                    user_key=user_key, purpose=purpose, granted=granted, updated_ms=now_ms
                )
                conn.execute(
                    stmt.on_conflict_do_update(
                        index_elements=["user_key", "purpose"],
                        set_={"granted": granted, "updated_ms": now_ms},
                    )
                )
                conn.execute(
                    t.consent_log.insert().values(
                        user_key=user_key, purpose=purpose, granted=granted, at_ms=now_ms
                    )
                )

    def decisions(self, user_key: str) -> dict[str, tuple[bool, int]]:
        """One user's stored decisions: purpose -> (granted, updated_ms)."""
        c = t.consents
        q = select(c.c.purpose, c.c.granted, c.c.updated_ms).where(c.c.user_key == user_key)
        with self.store.engine.connect() as conn:
            return {p: (bool(g), int(u)) for p, g, u in conn.execute(q)}

    def states(self, user_keys: Iterable[str], purpose: str) -> dict[str, bool]:
        """Stored decisions for one purpose over many users (absent: never decided).

        Every consent change appends to ``consent_log`` in the same transaction and every
        deletion is an erasure, which leaves a tombstone; so the log's newest row and the
        tombstones' count and newest time are a version of all consent state, in every process
        (:meth:`_stamp`). Answers are cached per version: a batch costs that lookup, plus a
        query for users not seen since the last change.
        """
        keys = set(user_keys)
        out: dict[str, bool] = {}
        if not keys:
            return out
        with self.store.engine.connect() as conn:
            # Hot path (every ingest batch): plain SQL, no statement compilation.
            version = self._stamp(conn)
            if version != self._version or sum(map(len, self._states.values())) > _STATES_MAX:
                self._states = {}
                self._version = version
            cache = self._states.setdefault(purpose, {})
            missing = sorted(keys.difference(cache))
            m = self._mark
            for part in chunks(missing, IN_CHUNK):
                sql = (
                    f"SELECT user_key, granted FROM consents WHERE purpose = {m} "
                    f"AND user_key IN ({', '.join([m] * len(part))})"
                )
                found = {k: bool(g) for k, g in conn.exec_driver_sql(sql, (purpose, *part))}
                for k in part:
                    cache[k] = found.get(k)
        for k in keys:
            state = cache[k]
            if state is not None:
                out[k] = state
        return out

    def snapshot(self, purpose: str) -> ConsentRead:
        """Every stored decision for one purpose, with the mark to read later changes from.

        The mark is read before the decisions: a change committed in between is in both, and
        applying it again from the log (:meth:`since`) changes nothing.
        """
        with self.store.engine.connect() as conn:
            erasures = erasure_stamp(conn)
            head = conn.exec_driver_sql(
                f"SELECT {_LOG_COLUMNS} FROM consent_log ORDER BY id DESC LIMIT 1"
            ).first()
            # Plain SQL: a million rows without SQLAlchemy's per-row type processing.
            rows = conn.exec_driver_sql(
                f"SELECT user_key, granted FROM consents WHERE purpose = {self._mark}", (purpose,)
            ).all()
        mark = ConsentMark(
            0 if head is None else int(head[0]),
            None if head is None else _log_row(head),
            erasures,
        )
        return ConsentRead({str(k): bool(g) for k, g in rows}, mark, len(rows))

    def since(self, purpose: str, mark: ConsentMark) -> ConsentRead | None:
        """The decisions for one purpose logged after ``mark``: only the new log rows are read
        (an indexed range on ``id``), in id order, so each user's newest decision wins.

        The log is append-only except for erasure, and ids are handed out in commit order (one
        writer at a time on SQLite; an advisory lock around consent writes on PostgreSQL), so a
        reader that has seen row ``n`` has seen every row before it.

        Returns:
            The changes, or ``None`` when rows were deleted since ``mark`` (an erasure: the
            tombstones changed, or the marked row is gone or its id was given to another row):
            the caller must take a new :meth:`snapshot`.
        """
        with self.store.engine.connect() as conn:
            # The tombstones first: an erasure finishing after this read is noticed next time.
            erasures = erasure_stamp(conn)
            if erasures != mark.erasures:
                return None
            found = conn.exec_driver_sql(
                f"SELECT {_LOG_COLUMNS} FROM consent_log WHERE id >= {self._mark} ORDER BY id",
                (mark.last_id,),
            ).all()
        if mark.last_row is not None:  # the marked row comes back first, unchanged
            if not found or int(found[0][0]) != mark.last_id:
                return None
            if _log_row(found[0]) != mark.last_row:
                return None
            found = found[1:]
        decisions: dict[str, bool] = {}
        for row in found:
            if row[2] == purpose:
                decisions[str(row[1])] = bool(row[3])
        if not found:
            return ConsentRead(decisions, mark, 0)
        last = found[-1]
        return ConsentRead(
            decisions, ConsentMark(int(last[0]), _log_row(last), erasures), len(found)
        )

    def _stamp(self, conn: Connection) -> tuple[Any, ...]:
        """A version of all consent state: the tombstones' stamp and the log's newest row."""
        head = conn.exec_driver_sql(
            f"SELECT {_LOG_COLUMNS} FROM consent_log ORDER BY id DESC LIMIT 1"
        ).first()
        return (erasure_stamp(conn), None if head is None else tuple(head))
