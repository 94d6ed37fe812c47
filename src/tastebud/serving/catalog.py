"""What serving needs to know about the catalogue, re-read in the background: each item's
category, whether it is hidden, when it was published, its title (for explanations)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

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


@dataclass(frozen=True)
class CatalogSnapshot:
    """The catalogue at one moment."""

    version: int
    category: dict[str, str | None]
    hidden: frozenset[str]
    created_ms: dict[str, int]
    titles: dict[str, str]
    _aligned: dict[str, Aligned] = field(default_factory=dict, repr=False, compare=False)
    _new: dict[tuple[int, float], list[tuple[str, str | None, int]]] = field(
        default_factory=dict, repr=False, compare=False
    )

    def aligned(self, key: str, item_ids: list[str]) -> Aligned:
        """The catalogue aligned with a model's items (``key``: its artifact id). Computed once
        per model and snapshot."""
        got = self._aligned.get(key)
        if got is None:
            names = sorted({c for c in self.category.values() if c})
            index = {c: i for i, c in enumerate(names)}
            cats = np.array(
                [index.get(self.category.get(i) or "", -1) for i in item_ids], dtype=np.int32
            )
            hidden = np.array([i in self.hidden for i in item_ids], dtype=bool)
            got = Aligned(cats, names, index, hidden)
            self._aligned[key] = got
        return got

    def new_items(self, now_ms: int, days: float) -> list[tuple[str, str | None, int]]:
        """Visible items published within ``days``, newest first: (id, category, created).
        Computed once per snapshot and minute."""
        key = (now_ms // 60_000, days)
        got = self._new.get(key)
        if got is None:
            cutoff = now_ms - int(days * 86_400_000)
            fresh = [
                (i, self.category.get(i), ms)
                for i, ms in self.created_ms.items()
                if ms >= cutoff and i not in self.hidden
            ]
            got = sorted(fresh, key=lambda r: -r[2])
            if len(self._new) > 4:
                self._new.clear()
            self._new[key] = got
        return got


class CatalogView:
    """The current :class:`CatalogSnapshot`, refreshed every ``refresh_s`` by a daemon thread
    (requests never wait for the database)."""

    def __init__(self, store: Store, refresh_s: float = 30.0) -> None:
        self.store = store
        self.refresh_s = refresh_s
        self._snap = CatalogSnapshot(0, {}, frozenset(), {}, {})
        self._loaded = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def get(self) -> CatalogSnapshot:
        """The latest snapshot (loaded on first use)."""
        if not self._loaded:
            self.refresh()
        return self._snap

    def refresh(self) -> CatalogSnapshot:
        """Re-read the catalogue now."""
        with self._lock:
            rows = Items(self.store).summaries()
            self._snap = CatalogSnapshot(
                version=self._snap.version + 1,
                category={r.item_id: r.category for r in rows},
                hidden=frozenset(r.item_id for r in rows if r.hidden),
                created_ms={r.item_id: r.created_ms for r in rows if r.created_ms is not None},
                titles={r.item_id: r.title for r in rows if r.title},
            )
            self._loaded = True
            return self._snap

    def start(self) -> None:
        """Refresh in the background until :meth:`stop`."""
        self.get()
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="tastebud-catalog", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.refresh_s):
            try:
                self.refresh()
            except Exception:  # keep serving the previous snapshot
                _log.warning("catalogue refresh failed", exc_info=True)

    def stop(self) -> None:
        """Stop refreshing."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def touch(self) -> None:
        """Note that the catalogue changed in this process (an item was written): re-read on
        the next request."""
        self._loaded = False
