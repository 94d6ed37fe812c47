"""Item-item neighbourhood models: item-kNN (cosine similarity between items' user vectors) and
RP3beta (three-step random walks, popular items penalised), top neighbours kept per item."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

import numpy as np
from numpy.typing import NDArray
from pydantic import Field
from scipy.sparse import csr_matrix, diags

from tastebud.models._base import (
    FitOptions,
    ModelConfig,
    Recommender,
    TrainingData,
    csr_from,
    csr_params,
    recency_weights,
    zero_rows,
)
from tastebud.models.signals import Weighting

__all__ = ["ItemKNN", "ItemKNNConfig", "RP3Beta", "RP3BetaConfig"]

_C = TypeVar("_C", bound=ModelConfig)


class ItemKNNConfig(ModelConfig):
    """Item-kNN settings.

    >>> d = TrainingData.from_arrays(3, 3, [0, 0, 1, 1, 2], [0, 1, 0, 1, 0])
    >>> ItemKNN().fit(d).recommend([2], 1, exclude=d.matrix()).item_idx.tolist()
    [[1]]
    """

    neighbors: int = Field(default=100, ge=1)
    """Similar items kept per item (the rest are zero)."""
    shrink: float = Field(default=0.0, ge=0)
    """Added to the cosine denominator: damps similarities built on few common users."""
    half_life: float | None = Field(default=None, gt=0)
    """Weigh the user's history by recency (``0.5 ** (later interactions / half_life)``)."""
    weighting: Weighting = "binary"
    """How interaction weights enter the item vectors and the history
    (:mod:`tastebud.models.signals`)."""

    @classmethod
    def search_space(cls) -> dict[str, list[Any]]:
        return {
            "neighbors": [20, 50, 100, 200, 400],
            "shrink": [0.0, 10.0, 50.0],
            "weighting": ["binary", "log", "bm25"],
        }

    @classmethod
    def time_blind(cls) -> dict[str, Any]:
        return {"half_life": None}


class _Neighbourhood(Recommender[_C]):
    """Scores an item by the user's (weighted, possibly recency-weighted) history times a sparse
    item x item matrix ``_sim``; subclasses say how ``_sim`` is built."""

    _sim: csr_matrix
    _history: csr_matrix

    def _similarity(self, data: TrainingData) -> csr_matrix:
        raise NotImplementedError

    def _fit(self, data: TrainingData, options: FitOptions) -> None:
        self._sim = self._similarity(data)
        self._history = self._history_of(data)

    def _history_of(self, data: TrainingData) -> csr_matrix:
        c = self.config
        half_life, weighting = c.half_life, c.weighting  # type: ignore[attr-defined]
        return recency_weights(data, half_life, weighting).astype(np.float32)

    def update(self, data: TrainingData, users: NDArray[np.integer[Any]]) -> None:
        """New histories for every user (item relations stay until the next full fit)."""
        self.n_users = data.n_users
        self._history = self._history_of(data)

    def _scores(self, users: NDArray[np.int64]) -> NDArray[np.float32]:
        return np.asarray((self._history[users] @ self._sim).todense(), dtype=np.float32)

    def _item_scores(self, items: NDArray[np.int64], w: NDArray[np.float32]) -> NDArray[np.float32]:
        return np.asarray(w @ self._sim[items].toarray(), dtype=np.float32)

    def _item_similarity(self, a: NDArray[np.int64], b: NDArray[np.int64]) -> NDArray[np.float32]:
        return np.asarray(self._sim[a][:, b].toarray(), dtype=np.float32)

    def _forget(self, users: NDArray[np.int64]) -> None:
        self._history = zero_rows(self._history, users)

    def _params(self) -> dict[str, NDArray[Any]]:
        return {**csr_params("sim", self._sim), **csr_params("history", self._history)}

    def _load(self, params: Mapping[str, NDArray[Any]]) -> None:
        self._sim = csr_from("sim", params)
        self._history = csr_from("history", params)


class ItemKNN(_Neighbourhood[ItemKNNConfig]):
    """Scores an item by the summed similarity to the items in the user's history."""

    name = "itemknn"
    config_class = ItemKNNConfig
    peer = True
    supports_update = True

    def _similarity(self, data: TrainingData) -> csr_matrix:
        x = data.weighted(self.config.weighting).tocsc()
        norms = np.sqrt(np.asarray(x.multiply(x).sum(axis=0)).ravel())
        sim = (x.T @ x).tocsr().astype(np.float32)
        sim.setdiag(0)
        sim.eliminate_zeros()
        rows, cols = sim.nonzero()  # the norms of each pair, not an items x items outer product
        denom = norms[rows] * norms[cols] + self.config.shrink
        sim.data = (sim.data / np.maximum(denom, 1e-9)).astype(np.float32)
        return _keep_top(sim, self.config.neighbors)


class RP3BetaConfig(ModelConfig):
    """RP3beta settings (Paudel et al. 2017; Dacrema et al. 2019 found it among the strongest
    baselines).

    >>> d = TrainingData.from_arrays(3, 3, [0, 0, 1, 1, 2], [0, 1, 0, 1, 0])
    >>> RP3Beta().fit(d).recommend([2], 1, exclude=d.matrix()).item_idx.tolist()
    [[1]]
    """

    neighbors: int = Field(default=200, ge=1)
    """Items kept per item (the rest are zero)."""
    beta: float = Field(default=0.3, ge=0, le=2)
    """Popularity penalty: the walk's arrival probability at an item is divided by the item's
    number of users to this power (0: plain three-step walk, P3)."""
    half_life: float | None = Field(default=None, gt=0)
    """Weigh the user's history by recency (``0.5 ** (later interactions / half_life)``)."""
    weighting: Weighting = "binary"
    """How interaction weights enter the walk and the history (:mod:`tastebud.models.signals`)."""

    @classmethod
    def search_space(cls) -> dict[str, list[Any]]:
        return {
            "beta": [0.0, 0.15, 0.3, 0.5],
            "neighbors": [50, 100, 200, 400],
            "weighting": ["binary", "log", "bm25"],
        }

    @classmethod
    def time_blind(cls) -> dict[str, Any]:
        return {"half_life": None}


class RP3Beta(_Neighbourhood[RP3BetaConfig]):
    """Scores an item by the probability that a random walk user -> item -> user -> item,
    started from the user's history, ends on it, divided by its popularity to the power
    ``beta``: ``W = P_iu P_ui`` (rows of the weighted matrix normalised into transition
    probabilities), columns scaled by ``1 / users_j ** beta``, the ``neighbors`` largest entries
    kept per row."""

    name = "rp3beta"
    config_class = RP3BetaConfig
    peer = True
    supports_update = True

    def _similarity(self, data: TrainingData) -> csr_matrix:
        c = self.config
        x = data.weighted(c.weighting).astype(np.float64)
        user_degree = np.asarray(x.sum(axis=1)).ravel()
        item_degree = np.asarray(x.sum(axis=0)).ravel()
        users_per_item = np.diff(x.tocsc().indptr).astype(np.float64)
        p_ui = diags(1.0 / np.maximum(user_degree, 1e-12)) @ x
        p_iu = diags(1.0 / np.maximum(item_degree, 1e-12)) @ csr_matrix(x.T)
        walk = csr_matrix(p_iu @ p_ui)
        walk = csr_matrix(walk @ diags(1.0 / np.maximum(users_per_item, 1.0) ** c.beta))
        walk.setdiag(0)
        walk.eliminate_zeros()
        return _keep_top_rows(walk.astype(np.float32), c.neighbors)


def _keep_top_rows(m: csr_matrix, k: int) -> csr_matrix:
    """Keep the ``k`` largest entries of each row."""
    return csr_matrix(_keep_top(csr_matrix(m.T), k).T)


def _keep_top(sim: csr_matrix, k: int) -> csr_matrix:
    """Keep the ``k`` largest entries of each column (similar items *to* the scored item)."""
    csc = sim.tocsc()
    data, indptr = csc.data, csc.indptr
    keep = np.zeros(len(data), dtype=bool)
    for j in range(csc.shape[1]):
        lo, hi = indptr[j], indptr[j + 1]
        if hi - lo <= k:
            keep[lo:hi] = True
        else:
            keep[lo + np.argpartition(-data[lo:hi], k - 1)[:k]] = True
    out = csc.copy()
    out.data = np.where(keep, data, 0).astype(np.float32)
    out.eliminate_zeros()
    return csr_matrix(out)
