"""Key rotation: re-encrypt every stored field under the newest Fernet key.

Encrypted values are stored as ``{"$enc": "<Fernet token>"}`` (``privacy.crypto``) in three
places: ``events.data``, ``events.context`` and ``users.attributes``. Catalogue items hold none:
their attributes are scalars or lists of scalars and never pass the encrypting policy.

Rotating is three steps (``docs/privacy.md``): put the new key first in
``TASTEBUD_FERNET_KEYS`` everywhere (new values are encrypted with it at once), run
:func:`rotate` (``tastebud privacy rotate-keys``), then remove the old key.

The module sits in ``events`` because it needs both ``privacy`` (the marker) and ``store`` (the
tables), which are sibling layers that may not import each other; ``events`` is the lowest layer
above both, and already owns the ingest path that writes most of the ciphertexts.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from pydantic import JsonValue
from sqlalchemy import ColumnElement, Connection, String, bindparam, cast, or_, select, update

from tastebud.errors import ConfigError
from tastebud.monitoring import get_logger
from tastebud.privacy import PrivacyLog
from tastebud.privacy.crypto import ENCRYPTED_MARKER
from tastebud.store import Store
from tastebud.store import tables as t

__all__ = ["RotationReport", "TableRotation", "rotate"]

_log = get_logger(__name__)
# What a JSON column's text holds iff some value in it may be encrypted: rows without it are
# never read. (``jsonb::text`` and orjson both render the key as ``"$enc"``; ``$`` is no LIKE
# wildcard.)
_MARKER_LIKE = f'%"{ENCRYPTED_MARKER}"%'


@dataclass
class TableRotation:
    """What :func:`rotate` did in one table."""

    table: str
    scanned: int = 0
    """Rows whose JSON holds the encrypted-value marker (the only rows read)."""
    rewritten: int = 0
    """Rows written back with at least one value re-encrypted."""
    fields: int = 0
    """Values re-encrypted under the newest key."""
    unreadable: int = 0
    """Values no configured key decrypts (left as they are)."""


@dataclass
class RotationReport:
    """The outcome of :func:`rotate`, per table."""

    tables: list[TableRotation] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def rewritten(self) -> int:
        """Rows rewritten in every table."""
        return sum(r.rewritten for r in self.tables)

    @property
    def unreadable(self) -> int:
        """Values no configured key decrypts, in every table."""
        return sum(r.unreadable for r in self.tables)

    def lines(self) -> list[str]:
        """One human-readable line per table."""
        return [
            f"{r.table:<16} {r.scanned:>10,} rows with encrypted values, "
            f"{r.rewritten:>10,} rewritten ({r.fields:,} values re-encrypted"
            + (f", {r.unreadable:,} unreadable" if r.unreadable else "")
            + ")"
            for r in self.tables
        ]


class _Rotator:
    """Re-encrypts tokens that the newest key did not sign; counts what it does."""

    def __init__(self, keys: Sequence[bytes]) -> None:
        if not keys:
            raise ConfigError("at least one Fernet key is required")
        try:
            fernets = [Fernet(k) for k in keys]
        except ValueError as exc:
            raise ConfigError(
                "a Fernet key is malformed (expected 32 url-safe base64-encoded bytes)"
            ) from exc
        self._newest = fernets[0]
        self._multi = MultiFernet(fernets)
        self.rotated = 0
        self.unreadable = 0

    def token(self, token: str) -> str | None:
        """The token re-encrypted under the newest key, or ``None`` to leave it as it is."""
        try:
            raw = token.encode("ascii")
        except UnicodeEncodeError:
            self.unreadable += 1
            return None
        try:
            # Verifies the HMAC only (no decryption): a token the newest key signed is done,
            # which makes a second run (or one resumed after a crash) rewrite nothing.
            self._newest.extract_timestamp(raw)
            return None
        except InvalidToken:
            pass
        try:
            # MultiFernet.rotate keeps the token's original timestamp.
            fresh = self._multi.rotate(raw)
        except InvalidToken:
            self.unreadable += 1
            return None
        self.rotated += 1
        return fresh.decode("ascii")


def _rotate_json(value: JsonValue, fix: Callable[[str], str | None]) -> JsonValue:
    """``value`` with every ``{"$enc": token}`` replaced as ``fix`` says; the same object if
    nothing changed (so callers can tell with ``is``)."""
    if isinstance(value, dict):
        if len(value) == 1 and ENCRYPTED_MARKER in value:
            token = value[ENCRYPTED_MARKER]
            fresh = fix(token) if isinstance(token, str) else None
            return value if fresh is None else {ENCRYPTED_MARKER: fresh}
        out: dict[str, JsonValue] | None = None
        for k, v in value.items():
            new = _rotate_json(v, fix)
            if new is not v:
                if out is None:
                    out = dict(value)
                out[k] = new
        return value if out is None else out
    if isinstance(value, list):
        items: list[JsonValue] | None = None
        for i, v in enumerate(value):
            new = _rotate_json(v, fix)
            if new is not v:
                if items is None:
                    items = list(value)
                items[i] = new
        return value if items is None else items
    return value


def _has_marker(column: Any) -> ColumnElement[bool]:
    return cast(column, String).like(_MARKER_LIKE)


def _lock_for_write(conn: Connection) -> None:
    """On SQLite, take the write lock before reading a batch, so that nothing changes between
    the read and the write (on PostgreSQL ``SELECT ... FOR UPDATE`` does this per row)."""
    if conn.dialect.name == "sqlite":
        dbapi: Any = conn.connection.dbapi_connection
        if not dbapi.in_transaction:
            dbapi.execute("BEGIN IMMEDIATE")


def _window_end(conn: Connection, key: Any, after: Any, size: int) -> Any:
    """The key ``size`` rows after ``after`` in key order (``None``: fewer rows are left).

    Batches are windows of the key's index, not ``LIMIT``-ed filtered scans: the planner cannot
    estimate the marker filter, and a filtered ``ORDER BY ... LIMIT`` sorted every remaining
    row on each batch (quadratic on PostgreSQL).
    """
    q = select(key).order_by(key).offset(size - 1).limit(1)
    return conn.execute(q if after is None else q.where(key > after)).scalar()


def _rotate_table(
    store: Store,
    rotator: _Rotator,
    table: Any,
    key: Any,
    columns: Sequence[Any],
    batch_size: int,
) -> TableRotation:
    """Rotate ``columns`` of ``table`` in windows of ``batch_size`` rows in ``key`` order, one
    transaction each, so a crash loses at most one batch and a re-run resumes cheaply."""
    report = TableRotation(str(table.name))  # a str, not SQLAlchemy's quoted_name
    names = [c.name for c in columns]
    candidates = select(key, *columns).where(or_(*(_has_marker(c) for c in columns)))
    after: Any = None
    while True:
        with store.engine.begin() as conn:
            _lock_for_write(conn)
            upper = _window_end(conn, key, after, batch_size)
            q = candidates.order_by(key).with_for_update()
            if after is not None:
                q = q.where(key > after)
            if upper is not None:
                q = q.where(key <= upper)
            rows = conn.execute(q).all()
            report.scanned += len(rows)
            before_rotated, before_unreadable = rotator.rotated, rotator.unreadable
            # Rows grouped by which columns changed: an executemany needs the same columns in
            # every row, and an unchanged NULL must not be written back as JSON null.
            changes: dict[tuple[str, ...], list[dict[str, JsonValue]]] = {}
            for row in rows:
                new: dict[str, JsonValue] = {}
                for name, value in zip(names, row[1:], strict=True):
                    fresh = _rotate_json(value, rotator.token)
                    if fresh is not value:
                        new[f"v_{name}"] = fresh
                if new:
                    changes.setdefault(tuple(sorted(new)), []).append({"k": row[0], **new})
            for changed, params in changes.items():
                stmt = (
                    update(table)
                    .where(key == bindparam("k"))
                    .values({c.removeprefix("v_"): bindparam(c) for c in changed})
                )
                conn.execute(stmt, params)
                report.rewritten += len(params)
            report.fields += rotator.rotated - before_rotated
            report.unreadable += rotator.unreadable - before_unreadable
        if upper is None:
            return report
        after = upper


def rotate(store: Store, keys: Sequence[bytes], *, batch_size: int = 1000) -> RotationReport:
    """Re-encrypt every stored encrypted value under the newest key.

    Only rows whose JSON holds the marker are read; a value the newest key already signed is
    left alone, so running it again (or after an interruption) rewrites nothing. Values that no
    key decrypts are counted as ``unreadable`` and left as they are. Each batch of rows is one
    transaction with its rows locked, so concurrent ingest and user updates are safe. Every row
    is visited once, in windows of ``batch_size`` rows in key order. Each run is recorded in the
    privacy log (the transparency report's key rotations).

    Args:
        store: The store to rotate.
        keys: The Fernet keys, newest first (as in ``TASTEBUD_FERNET_KEYS``); the newest
            encrypts, every one decrypts.
        batch_size: Rows per transaction.

    Raises:
        ConfigError: no key, or a malformed one.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    started = time.monotonic()
    rotator = _Rotator(keys)
    report = RotationReport()
    ev, users = t.events, t.users
    report.tables.append(
        _rotate_table(store, rotator, ev, ev.c.id, [ev.c.data, ev.c.context], batch_size)
    )
    report.tables.append(
        _rotate_table(store, rotator, users, users.c.user_key, [users.c.attributes], batch_size)
    )
    report.seconds = time.monotonic() - started
    # The transparency report counts rotations; counts only.
    details = {
        r.table: {"rewritten": r.rewritten, "unreadable": r.unreadable} for r in report.tables
    }
    PrivacyLog(store).record("rotation", report.rewritten, details, int(time.time() * 1000))
    _log.info(
        "fernet keys rotated",
        rows_rewritten=report.rewritten,
        values_rotated=rotator.rotated,
        unreadable=rotator.unreadable,
        seconds=round(report.seconds, 2),
    )
    return report
