"""Cold start: the lists that ship with every recommender (``cold_start.json``), the choice of
the list for a user and context, and its scores over the model's items, computed once per
model version and list."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType

import numpy as np
from numpy.typing import NDArray

from tastebud.features.daypart import daypart
from tastebud.models import standardise
from tastebud.registry.recommender import LoadedModel
from tastebud.serving.types import Context

__all__ = [
    "ChosenList",
    "ColdStartLists",
    "ColdStartScores",
    "ListKind",
    "choose_list",
]


class ListKind(StrEnum):
    """Which cold-start list, most specific first."""

    SEGMENT = "segment"
    DEVICE = "device"
    LOCALE = "locale"
    DAYPART = "daypart"
    GLOBAL = "global"


_BY_CONTEXT = (ListKind.SEGMENT, ListKind.DEVICE, ListKind.LOCALE, ListKind.DAYPART)


def _frozen(lists: Mapping[str, list[str]]) -> Mapping[str, tuple[str, ...]]:
    return MappingProxyType({str(k): tuple(v) for k, v in lists.items()})


@dataclass(frozen=True, slots=True)
class ColdStartLists:
    """The best items overall, per segment, device, locale and part of the day, and the
    trending items per category (``training.coldstart`` writes them)."""

    by_kind: Mapping[ListKind, Mapping[str, tuple[str, ...]]] = field(
        default_factory=lambda: MappingProxyType({})
    )
    """Per kind (not ``global``), per key (the segment, device...), items best first."""
    overall: tuple[str, ...] = ()
    """The overall list (``global``), best first."""
    trending: Mapping[str, frozenset[str]] = field(default_factory=lambda: MappingProxyType({}))
    """Per category, the items trending in it."""

    @classmethod
    def from_json(cls, doc: Mapping[str, object]) -> ColdStartLists:
        """Read the document of ``cold_start.json`` (missing parts: empty)."""

        def lists(name: str) -> Mapping[str, list[str]]:
            value = doc.get(name)
            return value if isinstance(value, dict) else {}

        overall = doc.get("global")
        return cls(
            MappingProxyType({kind: _frozen(lists(kind.value)) for kind in _BY_CONTEXT}),
            tuple(overall) if isinstance(overall, list) else (),
            MappingProxyType({str(c): frozenset(v) for c, v in lists("trending").items()}),
        )

    def ranked(self, chosen: ChosenList) -> tuple[str, ...]:
        """The items of the chosen list, best first."""
        if chosen.kind is ListKind.GLOBAL:
            return self.overall
        return self.by_kind.get(chosen.kind, {}).get(chosen.key, ())


@dataclass(frozen=True, slots=True)
class ChosenList:
    """The cold-start list really used: its kind and the artifact's own key for it (never the
    caller's text)."""

    kind: ListKind = ListKind.GLOBAL
    key: str = ""


_OVERALL = ChosenList()


def choose_list(lists: ColdStartLists, segment: object, context: Context) -> ChosenList:
    """The user's segment's list, else the device's, else the locale's, else the part of the
    day's, else the overall one: the first of those the artifact has."""
    wanted = (
        segment,
        context.device,
        context.locale,
        None if context.hour is None else daypart(context.hour),
    )
    for kind, value in zip(_BY_CONTEXT, wanted, strict=True):
        if value is not None:
            key = str(value)
            if key in lists.by_kind.get(kind, {}):
                return ChosenList(kind, key)
    return _OVERALL


class ColdStartScores:
    """Score vectors of cold-start lists over a model's items (the list's order gives the
    score), computed once per model version and list.

    Entries are keyed by the **artifact id** of the model version (issue 16, point 4): an
    address (``id()``) is reused by Python once a swap frees the old model, and would hand
    the new model a vector of the old one's items.

    Args:
        max_entries: Beyond this many vectors the cache starts again.
    """

    def __init__(self, max_entries: int = 256) -> None:
        self.max_entries = max_entries
        self._cache: dict[tuple[str, ChosenList], NDArray[np.float32]] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._cache)

    def scores(
        self, artifact_id: str, loaded: LoadedModel, lists: ColdStartLists, chosen: ChosenList
    ) -> NDArray[np.float32]:
        """Standardised scores of the ``chosen`` list over ``loaded``'s items (without lists
        in the artifact: the model's own popularity)."""
        key = (artifact_id, chosen)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        vocab = loaded.items
        out = np.full(len(vocab), -1e3, np.float32)
        ranked = lists.ranked(chosen)
        if ranked:
            for r, item in enumerate(ranked):
                j = vocab.index(item)
                if j >= 0:
                    out[j] = -float(r)
        else:  # no lists in the artifact: the model's own popularity
            popular = loaded.model.recommend(np.array([-1]), min(200, len(vocab)))
            for r, j in enumerate(popular.item_idx[0]):
                if j >= 0:
                    out[j] = -float(r)
        result = standardise(out)
        result.flags.writeable = False  # shared by every request for this list
        with self._lock:
            if len(self._cache) >= self.max_entries:
                self._cache.clear()
            self._cache[key] = result
        return result
