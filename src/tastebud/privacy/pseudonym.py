"""Keyed pseudonyms for user identities.

The seed sketched ``sha256(user_id)``; an unkeyed hash of a guessable id (an e-mail, a sequence
number) is reversed by hashing candidates. Tastebud keys it: HMAC-SHA256 with a secret that never
leaves the deployment, so a leaked database alone does not reveal who is who.
"""

from __future__ import annotations

import hashlib
import hmac

__all__ = ["Pseudonymizer"]


class Pseudonymizer:
    """Maps raw user and anonymous ids to stable 128-bit hex pseudonyms.

    User ids and anonymous ids live in separate namespaces, so ``user "x"`` and ``anonymous "x"``
    never collide.

    >>> p = Pseudonymizer(b"k" * 32)
    >>> p.user("alice") == p.user("alice") != p.anonymous("alice")
    True
    >>> len(p.user("alice"))
    32
    """

    __slots__ = ("_anonymous", "_event_mac", "_key", "_users")

    _CACHE_SIZE = 100_000

    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("the pseudonym key must be at least 16 bytes")
        self._key = key
        # The same users send many events: remember recent pseudonyms, one cache per namespace
        # (bounded; cleared whole when full, which is cheaper than LRU bookkeeping on the
        # ingest hot path).
        self._users: dict[str, str] = {}
        self._anonymous: dict[str, str] = {}
        # Event ids are derived on the ingest hot path: the keyed state is built once and
        # copied per event (cheaper than a new HMAC each time).
        self._event_mac = hmac.new(key, b"opaque\x00event\x00", hashlib.sha256)

    def __repr__(self) -> str:
        return "Pseudonymizer(<key hidden>)"

    def _digest(self, namespace: bytes, raw: str) -> str:
        mac = hmac.new(self._key, namespace + raw.encode("utf-8"), hashlib.sha256)
        return mac.hexdigest()[:32]

    def _miss(self, cache: dict[str, str], namespace: bytes, raw: str) -> str:
        if len(cache) >= self._CACHE_SIZE:
            cache.clear()
        found = cache[raw] = self._digest(namespace, raw)
        return found

    def user(self, user_id: str) -> str:
        """Pseudonym of a known (logged-in) user id."""
        found = self._users.get(user_id)
        return found if found is not None else self._miss(self._users, b"user\x00", user_id)

    def anonymous(self, anonymous_id: str) -> str:
        """Pseudonym of an anonymous (device or cookie) id."""
        found = self._anonymous.get(anonymous_id)
        if found is not None:
            return found
        return self._miss(self._anonymous, b"anon\x00", anonymous_id)

    def event_id(self, content: bytes) -> str:
        """The id of an event sent without one: a keyed digest of its canonical content, so that
        a retry or a reload of the same event is a duplicate, never a second event (and the id
        does not spell out the user id it was derived from).

        >>> p = Pseudonymizer(b"k" * 32)
        >>> p.event_id(b"a") == p.event_id(b"a") != p.event_id(b"b")
        True
        """
        mac = self._event_mac.copy()
        mac.update(content)
        return mac.hexdigest()[:32]

    def opaque(self, namespace: str, raw: str) -> str:
        """A keyed digest of ``raw`` for ids derived from personal data (e.g. the event id of an
        imported row, which would otherwise spell out the user id)."""
        return self._digest(b"opaque\x00" + namespace.encode("utf-8") + b"\x00", raw)
