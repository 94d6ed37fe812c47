"""Item-to-item linear models with closed-form solutions: EASE and Tastebud's sequence-aware
``tastebud_seq``.

EASE (Steck 2019) learns ``B`` minimising ``||X - XB||² + λ||B||²`` with a zero diagonal: every
item is predicted from the other items of the user's history, order ignored.

``tastebud_seq`` (after SLIST, Choi et al. 2021) adds what EASE ignores: *when*. It solves one
least-squares problem with two parts, ``||X - XB||² + α||Y - SB||² + λ||B||²``, where each row of
``S`` is a user's history *before* one of their interactions (the ``window`` previous items,
decayed by ``0.5 ** (steps back / seq_half_life)``) and the row of ``Y`` is that next item and
the few after it (decayed by ``future_half_life``); so ``B`` learns both "goes with" and "comes
next". At recommendation time a user's history is
weighted by recency (``history_half_life``), so the last session counts most. On data without
timestamps (or ``alpha=0`` and ``history_half_life=None``) it is exactly EASE.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

import numpy as np
from numpy.typing import NDArray
from pydantic import Field
from scipy.sparse import csr_matrix

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

__all__ = [
    "EASE",
    "EASEConfig",
    "SeqLinear",
    "SeqLinearConfig",
    "ease_matrix",
]

_C = TypeVar("_C", bound=ModelConfig)


class EASEConfig(ModelConfig):
    """EASE settings.

    >>> d = TrainingData.from_arrays(3, 3, [0, 0, 1, 1, 2], [0, 1, 0, 1, 0])
    >>> EASE(EASEConfig(l2=1.0)).fit(d).recommend([2], 1, exclude=d.matrix()).item_idx.tolist()
    [[1]]
    """

    l2: float = Field(default=300.0, gt=0)
    """Ridge penalty λ."""
    max_items: int = Field(default=10_000, ge=1)
    """The model is a dense ``items x items`` matrix: beyond this many items only the most
    popular ones can be recommended (memory grows with the square, time with the cube)."""

    @classmethod
    def search_space(cls) -> dict[str, list[Any]]:
        return {"l2": [30.0, 100.0, 300.0, 1000.0, 3000.0]}


class SeqLinearConfig(ModelConfig):
    """``tastebud_seq`` settings.

    >>> d = TrainingData.from_arrays(2, 4, [0, 0, 0, 1, 1], [0, 1, 2, 0, 1], ts=[1, 2, 3, 1, 2])
    >>> m = SeqLinear(SeqLinearConfig(l2=1.0)).fit(d)
    >>> m.recommend([1], 1, exclude=d.matrix()).item_idx.tolist()
    [[2]]
    """

    l2: float = Field(default=1000.0, gt=0)
    """Ridge penalty λ."""
    alpha: float = Field(default=1.0, ge=0)
    """Weight of the "comes next" part against the "goes with" part."""
    window: int = Field(default=30, ge=1)
    """Previous interactions that form the history of each next-item example."""
    seq_half_life: float = Field(default=5.0, gt=0)
    """Decay of those previous interactions, in steps back."""
    future_window: int = Field(default=10, ge=1)
    """Each example's target is its item and the ones after it, up to this many: the model
    learns what comes in the next few steps, not only the very next one."""
    future_half_life: float = Field(default=3.0, gt=0)
    """Decay of those later targets, in steps ahead."""
    history_half_life: float | None = Field(default=6.0, gt=0)
    """Recency weighting of the user's history when recommending, in steps back (``None``:
    all of the history counts the same)."""
    max_items: int = Field(default=10_000, ge=1)
    """As for EASE: the most popular items beyond this many are not recommended."""

    @classmethod
    def search_space(cls) -> dict[str, list[Any]]:
        return {
            "l2": [100.0, 300.0, 1000.0, 3000.0],
            "history_half_life": [3.0, 6.0, 12.0, 30.0, None],
            "alpha": [0.0, 0.3, 1.0, 3.0],
            "seq_half_life": [2.0, 5.0],
            "future_window": [1, 10],
        }


class _ItemItem(Recommender[_C]):
    """Scores = user history (possibly recency-weighted) x a dense item-item matrix."""

    _b: NDArray[np.float32]
    _cols: NDArray[np.int32]
    _history: csr_matrix

    def _history_of(self, data: TrainingData) -> csr_matrix:
        return data.matrix(binary=True)

    def _solve(self, data: TrainingData) -> NDArray[np.float64]:
        raise NotImplementedError

    def _fit(self, data: TrainingData, options: FitOptions) -> None:
        cap = int(getattr(self.config, "max_items", 10_000))
        counts = np.bincount(data.item, minlength=data.n_items)
        if data.n_items > cap:
            cols = np.sort(np.argsort(-counts, kind="stable")[:cap]).astype(np.int32)
        else:
            cols = np.arange(data.n_items, dtype=np.int32)
        self._cols = cols
        self._b = self._solve(_restrict(data, cols)).astype(np.float32)
        self._history = self._history_of(data).astype(np.float32)

    def update(self, data: TrainingData, users: NDArray[np.integer[Any]]) -> None:
        """New histories (the item-item matrix stays until the next full fit)."""
        self.n_users = data.n_users
        self._history = self._history_of(data).astype(np.float32)

    def _scores(self, users: NDArray[np.int64]) -> NDArray[np.float32]:
        h = self._history[users][:, self._cols]
        part = np.asarray(h @ self._b, dtype=np.float32)
        if len(self._cols) == self.n_items:
            return part
        out = np.full((len(users), self.n_items), -np.inf, np.float32)
        out[:, self._cols] = part
        return out

    def _item_scores(self, items: NDArray[np.int64], w: NDArray[np.float32]) -> NDArray[np.float32]:
        pos = np.searchsorted(self._cols, items)
        pos = np.minimum(pos, len(self._cols) - 1)
        known = self._cols[pos] == items
        part = w[known] @ self._b[pos[known]]
        if len(self._cols) == self.n_items:
            return np.asarray(part, np.float32)
        out = np.zeros(self.n_items, np.float32)
        out[self._cols] = part
        return out

    def _item_similarity(self, a: NDArray[np.int64], b: NDArray[np.int64]) -> NDArray[np.float32]:
        pa = np.minimum(np.searchsorted(self._cols, a), len(self._cols) - 1)
        pb = np.minimum(np.searchsorted(self._cols, b), len(self._cols) - 1)
        out: NDArray[np.float32] = self._b[np.ix_(pa, pb)].astype(np.float32)
        out[self._cols[pa] != a, :] = 0
        out[:, self._cols[pb] != b] = 0
        return out

    def _forget(self, users: NDArray[np.int64]) -> None:
        self._history = zero_rows(self._history, users)

    def _params(self) -> dict[str, NDArray[Any]]:
        return {"b": self._b, "cols": self._cols, **csr_params("history", self._history)}

    def _load(self, params: Mapping[str, NDArray[Any]]) -> None:
        self._b = np.asarray(params["b"], np.float32)
        self._cols = np.asarray(params["cols"], np.int32)
        self._history = csr_from("history", params)


class EASE(_ItemItem[EASEConfig]):
    """Embarrassingly shallow autoencoder (peer)."""

    name = "ease"
    config_class = EASEConfig
    peer = True
    supports_update = True

    def _solve(self, data: TrainingData) -> NDArray[np.float64]:
        return ease_matrix(data.matrix(binary=True), self.config.l2)


class SeqLinear(_ItemItem[SeqLinearConfig]):
    """Tastebud's sequence- and recency-aware linear model (see the module docstring)."""

    name = "tastebud_seq"
    config_class = SeqLinearConfig
    supports_update = True

    def _history_of(self, data: TrainingData) -> csr_matrix:
        return recency_weights(data, self.config.history_half_life)

    def _solve(self, data: TrainingData) -> NDArray[np.float64]:
        c = self.config
        x = data.matrix(binary=True)
        if c.alpha <= 0 or not data.has_time():
            return ease_matrix(x, c.l2)
        s, y = next_item_examples(
            data, c.window, c.seq_half_life, c.future_window, c.future_half_life
        )
        gram = (x.T @ x).toarray().astype(np.float64)
        a = gram + c.alpha * (s.T @ s).toarray()
        a[np.diag_indices_from(a)] += c.l2
        r = gram + c.alpha * (s.T @ y).toarray()
        b = np.linalg.solve(a, r)
        np.fill_diagonal(b, 0.0)
        return b


def ease_matrix(x: csr_matrix, l2: float) -> NDArray[np.float64]:
    """EASE's closed form: ``B = I - P diag(1/diag(P))``, ``P = (XᵀX + λI)⁻¹``, zero diagonal."""
    g = (x.T @ x).toarray().astype(np.float64)
    g[np.diag_indices_from(g)] += l2
    p = np.linalg.inv(g)
    b: NDArray[np.float64] = -p / np.diag(p)
    np.fill_diagonal(b, 0.0)
    return b


def next_item_examples(
    data: TrainingData,
    window: int,
    half_life: float,
    future: int = 1,
    future_half_life: float = 1.0,
) -> tuple[csr_matrix, csr_matrix]:
    """(S, Y): for every interaction with at least one earlier one by the same user, the decayed
    earlier items (row of S) and the item itself plus the ``future - 1`` next ones, decayed
    (row of Y)."""
    order = data.sequence_order()
    users, items = data.user[order], data.item[order]
    n = len(order)
    rows, cols, vals = [], [], []
    for d in range(1, min(window, max(n - 1, 0)) + 1):
        same = np.flatnonzero(users[:-d] == users[d:])
        if not len(same):
            break
        rows.append(same + d)
        cols.append(items[same])
        vals.append(np.full(len(same), 0.5 ** ((d - 1) / half_life), np.float32))
    if not rows:
        empty = csr_matrix(np.zeros((0, data.n_items), np.float32))
        return empty, empty
    s = csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
        shape=(n, data.n_items),
    )
    y_rows, y_cols, y_vals = [np.arange(n)], [items], [np.ones(n, np.float32)]
    for d in range(1, min(future, n)):
        same = np.flatnonzero(users[:-d] == users[d:])
        if not len(same):
            break
        y_rows.append(same)
        y_cols.append(items[same + d])
        y_vals.append(np.full(len(same), 0.5 ** (d / future_half_life), np.float32))
    y = csr_matrix(
        (np.concatenate(y_vals), (np.concatenate(y_rows), np.concatenate(y_cols))),
        shape=(n, data.n_items),
    )
    keep = np.flatnonzero(np.diff(s.indptr) > 0)
    return s[keep], y[keep]


def _restrict(data: TrainingData, cols: NDArray[np.int32]) -> TrainingData:
    """The interactions with the given items only, items renumbered ``0..len(cols)-1``."""
    if len(cols) == data.n_items:
        return data
    remap = np.full(data.n_items, -1, np.int64)
    remap[cols] = np.arange(len(cols))
    keep = remap[data.item] >= 0
    return TrainingData.from_arrays(
        data.n_users,
        len(cols),
        data.user[keep],
        remap[data.item[keep]],
        data.ts[keep],
        data.weight[keep],
    )
