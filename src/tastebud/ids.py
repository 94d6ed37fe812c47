"""Vocabulary: external string ids <-> dense integer indices.

Models only ever see dense indices; a vocabulary is built from the data (in ``pipeline``),
versioned with the model, and applied in serving. Unknown ids map to ``-1`` and take an explicit
cold-start path; they never raise ``KeyError``.

Example::

    >>> v = Vocabulary(["b", "a", "b"])
    >>> len(v), v.index("a"), v.index("zzz"), v.ids[1]
    (2, 1, -1, 'a')
    >>> v.indices(["a", "b", "c"]).tolist()
    [1, 0, -1]
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
from numpy.typing import NDArray

__all__ = ["Vocabulary"]


class Vocabulary:
    """An ordered set of ids; index ``i`` is the ``i``-th distinct id in first-seen order."""

    __slots__ = ("_index", "ids")

    def __init__(self, ids: Iterable[str] = ()) -> None:
        self._index: dict[str, int] = {}
        for i in ids:
            if i not in self._index:
                self._index[i] = len(self._index)
        self.ids: list[str] = list(self._index)

    def __len__(self) -> int:
        return len(self.ids)

    def __contains__(self, item: object) -> bool:
        return item in self._index

    def __repr__(self) -> str:
        return f"Vocabulary({len(self)} ids)"

    def index(self, key: str) -> int:
        """The index of ``key``, or ``-1`` if unknown."""
        return self._index.get(key, -1)

    def indices(self, keys: Sequence[str]) -> NDArray[np.int64]:
        """Indices of many keys (``-1`` for unknown ones)."""
        get = self._index.get
        return np.fromiter((get(k, -1) for k in keys), dtype=np.int64, count=len(keys))

    def to_list(self) -> list[str]:
        """The ids in index order (what the registry stores)."""
        return list(self.ids)
