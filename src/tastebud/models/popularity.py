"""Popularity: the most-interacted items, globally, per user group (segment) or recent only."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from tastebud.models._base import FitOptions, ModelConfig, Recommender, TrainingData

__all__ = ["Popularity", "PopularityConfig"]


class PopularityConfig(ModelConfig):
    """Popularity settings.

    >>> d = TrainingData.from_arrays(3, 3, [0, 1, 2, 2], [0, 1, 1, 2])
    >>> Popularity().fit(d).recommend([0], 2).item_idx.tolist()
    [[1, 0]]
    """

    by: Literal["global", "group"] = "global"
    """``group``: count per user group (``TrainingData.user_groups``, e.g. segment); users with no
    group or a group too small get the global list."""
    half_life_days: float | None = None
    """Weigh each interaction by ``0.5 ** (age / half_life)``, age measured from the latest
    interaction in the data (``None``: all count the same)."""
    min_group_users: int = 20
    """A group with fewer users than this uses the global counts (no tiny-group lists)."""

    @classmethod
    def search_space(cls) -> dict[str, list[Any]]:
        return {}


class Popularity(Recommender[PopularityConfig]):
    """Recommends the most popular items the user has not seen yet."""

    name = "popularity"
    config_class = PopularityConfig
    peer = True
    supports_update = True

    def _counts(self, data: TrainingData) -> NDArray[np.float64]:
        w = np.ones(len(data))
        if self.config.half_life_days and data.has_time():
            age_days = (data.ts.max() - data.ts) / 86_400
            w = 0.5 ** (age_days / self.config.half_life_days)
        return w

    def _fit(self, data: TrainingData, options: FitOptions) -> None:
        w = self._counts(data)
        self._global = np.bincount(data.item, weights=w, minlength=data.n_items).astype(np.float32)
        groups = data.user_groups
        if self.config.by == "group" and groups is not None and len(groups) == data.n_users:
            n_groups = int(groups.max(initial=-1)) + 1
            g = groups[data.user]
            ok = g >= 0
            table = np.zeros((max(n_groups, 1), data.n_items), np.float32)
            np.add.at(table, (g[ok], data.item[ok]), w[ok])
            sizes = np.bincount(groups[groups >= 0], minlength=n_groups)
            table[sizes < self.config.min_group_users] = self._global
            self._groups = np.asarray(groups, np.int32)
            self._table = table
        else:
            self._groups = np.full(data.n_users, -1, np.int32)
            self._table = np.zeros((0, data.n_items), np.float32)

    def update(self, data: TrainingData, users: NDArray[np.integer[Any]]) -> None:
        """Recount (popularity is cheap to recompute)."""
        self.fit(data)

    def _scores(self, users: NDArray[np.int64]) -> NDArray[np.float32]:
        g = self._groups[users]
        out = np.broadcast_to(self._global, (len(users), self.n_items)).copy()
        has = g >= 0
        if has.any():
            out[has] = self._table[g[has]]
        return out

    def _params(self) -> dict[str, NDArray[Any]]:
        return {"global": self._global, "groups": self._groups, "table": self._table}

    def _load(self, params: Mapping[str, NDArray[Any]]) -> None:
        self._global = np.asarray(params["global"], np.float32)
        self._groups = np.asarray(params["groups"], np.int32)
        self._table = np.asarray(params["table"], np.float32)
