"""API keys: creation, hashing, scope checks and constant-time authentication.

A key looks like ``tb_<scope>_<key id>_<secret>``. Only the SHA-256 of the secret is stored (the
secret is 256 random bits, so a plain hash cannot be brute-forced); the key id finds the row, and
the hashes are compared with :func:`hmac.compare_digest`. The full key is shown once, at creation.

Scopes (DESIGN.md): ``ingest`` sends events and consent changes and is safe to embed in a web page;
``serve`` reads recommendations, profiles and models; ``admin`` may do everything.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Literal, get_args

from sqlalchemy import select, update

from tastebud.errors import InvalidInput, Unauthenticated, UnknownKey
from tastebud.store import Store
from tastebud.store import tables as t

__all__ = [
    "KeyInfo",
    "KeyManager",
    "Principal",
    "SCOPES",
    "Scope",
    "scope_allows",
]

Scope = Literal["ingest", "serve", "admin"]
SCOPES: tuple[Scope, ...] = get_args(Scope)


def scope_allows(have: str, need: str) -> bool:
    """Whether a key of scope ``have`` may use a route that needs ``need``.

    >>> scope_allows("admin", "ingest"), scope_allows("serve", "ingest")
    (True, False)
    """
    return have == "admin" or have == need


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller of a request."""

    key_id: str
    name: str
    scope: Scope


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """Public facts about a key (never its secret or hash)."""

    key_id: str
    name: str
    scope: Scope
    created_ms: int
    revoked_ms: int | None


@dataclass(frozen=True, slots=True)
class _KeyRow:
    """What authentication reads of a key's row."""

    key_id: str
    name: str
    scope: str
    secret_hash: str
    revoked_ms: int | None


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


class KeyManager:
    """Creates, lists, revokes and authenticates API keys (this module owns the ``api_keys``
    table's queries).

    Args:
        store: Where key hashes live.
        cache_seconds: How long a looked-up key is trusted before it is read again (revocation
            reaches other processes within this time; the revoking process forgets at once).
    """

    def __init__(self, store: Store, *, cache_seconds: float = 2.0) -> None:
        self.store = store
        self.cache_seconds = cache_seconds
        self._cache: dict[str, tuple[float, _KeyRow | None]] = {}
        self._lock = threading.Lock()

    def create(self, name: str, scope: str) -> tuple[KeyInfo, str]:
        """Create a key. Returns its public info and the full key, which is not stored.

        Raises:
            InvalidInput: unknown scope or bad name.
        """
        if scope not in SCOPES:
            raise InvalidInput(f"scope must be one of {', '.join(SCOPES)}")
        name = name.strip()
        if not 1 <= len(name) <= 128 or not name.isprintable():
            raise InvalidInput("name must be 1 to 128 printable characters")
        key_id = secrets.token_hex(6)
        secret = secrets.token_urlsafe(32)
        now_ms = int(time.time() * 1000)
        row = {"name": name, "scope": scope, "secret_hash": _hash(secret), "created_ms": now_ms}
        with self.store.engine.begin() as conn:
            conn.execute(t.api_keys.insert().values(key_id=key_id, **row))
        info = KeyInfo(key_id, name, scope, now_ms, None)
        return info, f"tb_{scope}_{key_id}_{secret}"

    def list(self) -> list[KeyInfo]:
        """Every key, revoked ones included."""
        k = t.api_keys
        q = select(k.c.key_id, k.c.name, k.c.scope, k.c.created_ms, k.c.revoked_ms)
        with self.store.engine.connect() as conn:
            rows = conn.execute(q.order_by(k.c.created_ms, k.c.key_id)).all()
        return [KeyInfo(r.key_id, r.name, r.scope, r.created_ms, r.revoked_ms) for r in rows]

    def revoke(self, key_id: str) -> None:
        """Revoke a key; it stops working at once in this process.

        Raises:
            UnknownKey: no active key has this id.
        """
        k = t.api_keys
        active = update(k).where(k.c.key_id == key_id, k.c.revoked_ms.is_(None))
        with self.store.engine.begin() as conn:
            revoked = conn.execute(active.values(revoked_ms=int(time.time() * 1000))).rowcount
        if not revoked:
            raise UnknownKey("no active API key has this id")
        with self._lock:
            self._cache.pop(key_id, None)

    def _read(self, key_id: str) -> _KeyRow | None:
        """One key's row (hash included), or ``None``."""
        k = t.api_keys
        q = select(k.c.key_id, k.c.name, k.c.scope, k.c.secret_hash, k.c.revoked_ms)
        with self.store.engine.connect() as conn:
            row = conn.execute(q.where(k.c.key_id == key_id)).first()
        if row is None:
            return None
        return _KeyRow(row.key_id, row.name, row.scope, row.secret_hash, row.revoked_ms)

    def _row(self, key_id: str) -> _KeyRow | None:
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(key_id)
        if hit is not None and now - hit[0] < self.cache_seconds:
            return hit[1]
        row = self._read(key_id)
        with self._lock:
            if len(self._cache) > 10_000:  # bounded: unknown ids must not grow it forever
                self._cache.clear()
            self._cache[key_id] = (now, row)
        return row

    def authenticate_cached(self, token: str) -> Principal | None:
        """Like :meth:`authenticate`, but without touching the database: ``None`` when the key
        is not in the cache (then call :meth:`authenticate`, off the event loop).

        Raises:
            Unauthenticated: as :meth:`authenticate`, for a cached verdict.
        """
        parts = token.split("_", 3)
        if len(parts) == 4:
            hit = self._cache.get(parts[2])
            if hit is None or time.monotonic() - hit[0] >= self.cache_seconds:
                return None
        return self.authenticate(token)

    def authenticate(self, token: str) -> Principal:
        """Check a presented key.

        Raises:
            Unauthenticated: malformed, unknown or revoked key (one message for all, so the
                answer does not reveal which key ids exist).
        """
        parts = token.split("_", 3)
        failure = Unauthenticated("invalid or revoked API key")
        if len(parts) != 4 or parts[0] != "tb" or parts[1] not in SCOPES or len(parts[2]) != 12:
            raise failure
        row = self._row(parts[2])
        expected = row.secret_hash if row is not None else _hash("x" * 43)
        ok = hmac.compare_digest(_hash(parts[3]), expected)
        if row is None or not ok or row.revoked_ms is not None or row.scope != parts[1]:
            raise failure
        return Principal(row.key_id, row.name, parts[1])
