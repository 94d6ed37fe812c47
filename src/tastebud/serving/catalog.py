"""What serving needs to know about the catalogue, re-read in the background: each item's
category, whether it is hidden, when it was published, its title (for explanations)."""

from __future__ import annotations

import bisect
import threading
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from tastebud.background import Poller
from tastebud.catalog import Items
from tastebud.monitoring import get_logger
from tastebud.store import Store

__all__ = ["Aligned", "CatalogSnapshot", "CatalogView"]

_log = get_logger(__name__)


@dataclass(frozen=True, eq=False)
class Aligned:
    """The catalogue aligned with one model's items."""

    cats: NDArray[np.int32]
    """Per item, the index of its category in ``names`` (``-1``: none)."""
    names: list[str]
    """Category names, sorted."""
    index: dict[str, int]
    """Category name -> its index in ``names``."""
    hidden: NDArray[np.bool_]
    """Per item, whether it is hidden (never served)."""
    item_ids: list[str]
    """The model's items, as aligned (kept to align the next snapshot ahead of time)."""


@dataclass(frozen=True)
class CatalogSnapshot:
    """The catalogue at one moment."""

    version: int
    category: dict[str, str | None]
    hidden: frozenset[str]
    created_ms: dict[str, int]
    titles: dict[str, str]
    _aligned: dict[str, Aligned] = field(default_factory=dict, repr=False, compare=False)
    _newest: list[tuple[str, str | None, int]] | None = field(
        default=None, repr=False, compare=False
    )
    _newest_keys: list[int] = field(default_factory=list, repr=False, compare=False)

    def aligned(self, key: str, item_ids: list[str]) -> Aligned:
        """The catalogue aligned with a model's items (``key``: its artifact id). Computed once
        per model and snapshot (by the refresh thread, for the models in use)."""
        got = self._aligned.get(key)
        if got is None:
            names = sorted({c for c in self.category.values() if c})
            index = {c: i for i, c in enumerate(names)}
            cats = np.array(
                [index.get(self.category.get(i) or "", -1) for i in item_ids], dtype=np.int32
            )
            hidden = np.array([i in self.hidden for i in item_ids], dtype=bool)
            got = Aligned(cats, names, index, hidden, item_ids)
            self._aligned[key] = got
        return got

    def new_items(self, now_ms: int, days: float) -> list[tuple[str, str | None, int]]:
        """Visible items published within ``days``, newest first: (id, category, created).
        Cut from the snapshot's items sorted once by publication time."""
        newest = self._by_publication()
        cutoff = now_ms - int(days * 86_400_000)
        return newest[: bisect.bisect_right(self._newest_keys, -cutoff)]

    def _by_publication(self) -> list[tuple[str, str | None, int]]:
        """Visible items with a publication time, newest first (ties in catalogue order)."""
        if self._newest is None:
            rows = sorted(
                (
                    (i, self.category.get(i), ms)
                    for i, ms in self.created_ms.items()
                    if i not in self.hidden
                ),
                key=lambda r: -r[2],
            )
            object.__setattr__(self, "_newest_keys", [-r[2] for r in rows])
            object.__setattr__(self, "_newest", rows)
            return rows
        return self._newest

    def same_items(self, other: CatalogSnapshot) -> bool:
        """Whether ``other`` holds exactly this catalogue."""
        return (
            self.category == other.category
            and self.hidden == other.hidden
            and self.created_ms == other.created_ms
            and self.titles == other.titles
        )


class CatalogView:
    """The current :class:`CatalogSnapshot`, re-read every ``refresh_s`` by a daemon thread
    (requests never wait for the database). A re-read that finds the catalogue unchanged keeps
    the snapshot (and the lists cached against its version); a changed one is prepared in
    that thread (aligned with the models in use, sorted by publication) before requests see
    it."""

    def __init__(self, store: Store, refresh_s: float = 30.0) -> None:
        self.store = store
        self.refresh_s = refresh_s
        self._snap = CatalogSnapshot(0, {}, frozenset(), {}, {})
        self._loaded = False
        self._lock = threading.Lock()
        self._poller = Poller(
            self.refresh,
            lambda: self.refresh_s,
            name="tastebud-catalog",
            failed=lambda exc: _log.warning("catalogue refresh failed", exc_info=exc),
        )

    def get(self) -> CatalogSnapshot:
        """The latest snapshot (loaded on first use)."""
        if not self._loaded:
            self.refresh()
        return self._snap

    def refresh(self) -> CatalogSnapshot:
        """Re-read the catalogue now; returns the current snapshot (the same one when nothing
        changed)."""
        with self._lock:
            rows = Items(self.store).summaries()
            old = self._snap
            snap = CatalogSnapshot(
                version=old.version + 1,
                category={r.item_id: r.category for r in rows},
                hidden=frozenset(r.item_id for r in rows if r.hidden),
                created_ms={r.item_id: r.created_ms for r in rows if r.created_ms is not None},
                titles={r.item_id: r.title for r in rows if r.title},
            )
            if self._loaded and snap.same_items(old):
                # Unchanged: keep the snapshot, its version (cached lists stay valid) and
                # what was computed from it.
                return old
            # Changed: what requests would compute from it is computed here, off the event
            # loop (aligning 20,000 items with a model took a request 10 to 20 ms).
            for key, aligned in list(old._aligned.items()):
                snap.aligned(key, aligned.item_ids)
            snap._by_publication()
            self._snap = snap
            self._loaded = True
            return snap

    def start(self) -> None:
        """Refresh in the background until :meth:`stop` (a failed refresh keeps serving the
        previous snapshot)."""
        self.get()
        self._poller.start()

    def stop(self) -> None:
        """Stop refreshing."""
        self._poller.stop()

    def touch(self) -> None:
        """Note that the catalogue changed in this process (an item was written): re-read on
        the next request."""
        self._loaded = False
