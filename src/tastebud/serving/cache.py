"""The per-process cache of recommendation lists.

An entry is keyed by the user and the request, and checked against a fingerprint of everything
else the list depends on (the model version, the catalogue version, the user's real-time
state). The state is read from the shared store on every request, so an event sent to any
process invalidates every process's entry.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass

from tastebud.monitoring import CACHE_TOTAL
from tastebud.serving.types import RecommendationList

__all__ = ["ListCache"]

_HIT = CACHE_TOTAL.labels(result="hit")
_MISS = CACHE_TOTAL.labels(result="miss")


@dataclass(frozen=True, slots=True)
class _Entry:
    fingerprint: Hashable
    ranked: RecommendationList
    expires: float


class ListCache:
    """Recent lists, least recently stored dropped first.

    Args:
        ttl_s: Lifetime of an entry (0: the cache is off).
        size: Most entries kept.
        clock: Monotonic seconds (tests pass a fake clock).
    """

    def __init__(
        self, ttl_s: float, size: int, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.ttl_s = ttl_s
        self.size = size
        self.clock = clock
        self.hits = 0
        self.misses = 0
        self._entries: OrderedDict[tuple[str, Hashable], _Entry] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def enabled(self) -> bool:
        """Whether lists are kept at all."""
        return self.ttl_s > 0 and self.size > 0

    def get(self, user: str, request: Hashable, fingerprint: Hashable) -> RecommendationList | None:
        """The list stored for ``user`` and ``request`` if it is still fresh and was made from
        the same ``fingerprint``; counted as a hit or a miss."""
        now = self.clock()
        with self._lock:
            hit = self._entries.get((user, request))
            if hit is not None and hit.fingerprint == fingerprint and hit.expires > now:
                self.hits += 1
                _HIT.inc()
                return hit.ranked
        self.misses += 1
        _MISS.inc()
        return None

    def put(
        self, user: str, request: Hashable, fingerprint: Hashable, ranked: RecommendationList
    ) -> None:
        """Keep ``ranked`` for ``user`` and ``request``."""
        if not self.enabled:
            return
        key = (user, request)
        now = self.clock()
        with self._lock:
            entries = self._entries
            entries[key] = _Entry(fingerprint, ranked, now + self.ttl_s)
            entries.move_to_end(key)
            # Entries are in the order they expire (each was stored last): drop the expired
            # ones now rather than when the size bound is reached. Otherwise the cache fills
            # to ``size`` with dead lists (hundreds of thousands of objects) that every full
            # garbage collection walks: stalls of a few hundred ms under load.
            while entries:
                oldest = next(iter(entries.values()))
                if oldest.expires > now and len(entries) <= self.size:
                    break
                entries.popitem(last=False)

    def forget(self, user: str) -> int:
        """Drop the user's lists (erasure); returns how many."""
        with self._lock:
            gone = [key for key in self._entries if key[0] == user]
            for key in gone:
                del self._entries[key]
        return len(gone)

    def clear(self) -> None:
        """Drop every list."""
        with self._lock:
            self._entries.clear()
