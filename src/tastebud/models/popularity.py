"""Popularity: the most-interacted items, globally, per user group (segment) or recent only."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray
from pydantic import Field

from tastebud.models._base import (
    FitOptions,
    ModelConfig,
    NotFitted,
    Recommender,
    TrainingData,
)
from tastebud.models.ranking import Recommendations, top_k
from tastebud.models.signals import Weighting

__all__ = ["Popularity", "PopularityConfig"]


class PopularityConfig(ModelConfig):
    """Popularity settings.

    >>> d = TrainingData.from_arrays(3, 3, [0, 1, 2, 2], [0, 1, 1, 2])
    >>> Popularity().fit(d).recommend([0], 2).item_idx.tolist()
    [[1, 0]]
    """

    by: Literal["global", "group", "context"] = "global"
    """``group``: count per user group (``TrainingData.user_groups``, e.g. segment); ``context``:
    count per interaction context (``TrainingData.context``, e.g. device or hour), each user
    getting the list of the context they use most. Users with no group, and groups with too few
    users, get the global list; ``for_groups`` gives any group's list (cold start)."""
    half_life_days: float | None = Field(default=None, gt=0)
    """Weigh each interaction by ``0.5 ** (age / half_life)``, age measured from the latest
    interaction in the data (``None``: all count the same)."""
    min_group_users: int = Field(default=20, ge=1)
    """A group or context with fewer distinct users than this uses the global counts (no
    tiny-group lists: they would reveal what a handful of people did)."""
    weighting: Weighting = "binary"
    """What an interaction counts (:mod:`tastebud.models.signals`): 1 with ``binary`` (items
    ranked by how many met them), or its transformed weight (by how much they were played,
    watched, rated...)."""

    @classmethod
    def search_space(cls) -> dict[str, list[Any]]:
        return {"weighting": ["binary", "log", "bm25"]}

    @classmethod
    def time_blind(cls) -> dict[str, Any]:
        return {"half_life_days": None}


class Popularity(Recommender[PopularityConfig]):
    """Recommends the most popular items the user has not seen yet."""

    name = "popularity"
    config_class = PopularityConfig
    peer = True
    supports_update = True

    def _counts(self, data: TrainingData) -> NDArray[np.float64]:
        w = np.ones(len(data))
        if self.config.weighting != "binary" and len(data):
            pairs = data.weighted(self.config.weighting)
            w = np.asarray(pairs[data.user, data.item], dtype=np.float64).ravel()
            # A pair met several times counts its weight once.
            key = data.user.astype(np.int64) * data.n_items + data.item
            _, first = np.unique(key, return_index=True)
            once = np.zeros(len(data), dtype=bool)
            once[first] = True
            w = np.where(once, w, 0.0)
        if self.config.half_life_days and data.has_time():
            age_days = (data.ts.max() - data.ts) / 86_400
            w = w * 0.5 ** (age_days / self.config.half_life_days)
        return w

    def _fit(self, data: TrainingData, options: FitOptions) -> None:
        w = self._counts(data)
        self._global = np.bincount(data.item, weights=w, minlength=data.n_items).astype(np.float32)
        self._groups = np.full(data.n_users, -1, np.int32)
        self._table = np.zeros((0, data.n_items), np.float32)
        if self.config.by == "group" and data.user_groups is not None:
            self._groups = np.asarray(data.user_groups, np.int32)
            self._build_table(self._groups[data.user], data, w)
        elif self.config.by == "context" and data.context is not None:
            ctx = np.asarray(data.context, np.int32)
            self._build_table(ctx, data, w)
            # A user's own list is that of the context they use most (e.g. their usual device).
            ok = ctx >= 0
            if ok.any():
                n_ctx = int(ctx.max()) + 1
                pair = data.user[ok].astype(np.int64) * n_ctx + ctx[ok]
                counts = np.bincount(pair, minlength=data.n_users * n_ctx)
                usual = counts.reshape(data.n_users, n_ctx).argmax(axis=1).astype(np.int32)
                self._groups = np.where(
                    counts.reshape(data.n_users, n_ctx).max(axis=1) > 0, usual, -1
                ).astype(np.int32)

    def _build_table(
        self, group_of_row: NDArray[np.int32], data: TrainingData, w: NDArray[np.float64]
    ) -> None:
        ok = group_of_row >= 0
        n_groups = int(group_of_row.max(initial=-1)) + 1
        table = np.zeros((max(n_groups, 1), data.n_items), np.float32)
        np.add.at(table, (group_of_row[ok], data.item[ok]), w[ok])
        users = np.zeros(max(n_groups, 1), np.int64)
        pairs = np.unique(np.stack([group_of_row[ok], data.user[ok]]), axis=1)
        np.add.at(users, pairs[0], 1)
        table[users < self.config.min_group_users] = self._global
        self._table = table

    def for_groups(self, groups: NDArray[np.integer[Any]], k: int) -> Recommendations:
        """The top ``k`` of each given group (``by="group"``) or context (``by="context"``)
        index, for cold-start lists; unknown or too small groups get the global list."""
        if not self._fitted:
            raise NotFitted(f"{self.name} is not fitted")
        g = np.asarray(groups, np.int64)
        scores = np.broadcast_to(self._global, (len(g), self.n_items)).copy()
        has = (g >= 0) & (g < len(self._table))
        if has.any():
            scores[has] = self._table[g[has]]
        return top_k(scores, k)

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

    def _forget(self, users: NDArray[np.int64]) -> None:
        self._groups[users[users < len(self._groups)]] = -1

    def _params(self) -> dict[str, NDArray[Any]]:
        return {"global": self._global, "groups": self._groups, "table": self._table}

    def _load(self, params: Mapping[str, NDArray[Any]]) -> None:
        self._global = np.asarray(params["global"], np.float32)
        self._groups = np.asarray(params["groups"], np.int32)
        self._table = np.asarray(params["table"], np.float32)
