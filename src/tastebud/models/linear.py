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

Both read interaction weights through ``weighting`` (:mod:`tastebud.models.signals`): the
matrix ``X`` and the user's history hold the transformed weights instead of 1s.

**Two exact solutions.** The primal one inverts the ``items x items``
matrix ``XᵀX + λI`` (Cholesky, about ``n³`` operations for ``n`` items). When there are fewer
users than items, the Woodbury identity ``(XᵀX + λI)⁻¹ = (I − Xᵀ(XXᵀ + λI)⁻¹X) / λ`` moves the
work to the ``users x users`` matrix ``XXᵀ``: EASE's ``B = I − P diag(P)⁻¹`` is never formed, a
history ``h`` scores ``h − (hP) / diag(P)`` with ``hP = (h − (hXᵀ) M X) / λ``,
``M = (XXᵀ + λI)⁻¹``. Its eigendecomposition ``XXᵀ = VΣVᵀ`` does not depend on λ, so a search
over λ decomposes once (cached on the training data) and every λ costs a ``users x users``
product. The dual form holds every item (no ``max_items`` cap: its memory grows with the users,
not the items). It is used with at most half as many users as items and at most
``DUAL_MAX_USERS`` users, where a request (``users²`` operations) stays quick.
``tastebud_seq``'s "comes next" part adds a row per interaction, so with real time and
``alpha > 0`` it is solved in the primal form.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np
from numpy.typing import NDArray
from pydantic import Field
from scipy.linalg import lapack, solve
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
from tastebud.models.signals import Weighting

__all__ = [
    "DUAL_MAX_USERS",
    "EASE",
    "EASEConfig",
    "SeqLinear",
    "SeqLinearConfig",
    "ease_matrix",
    "next_item_examples",
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
    weighting: Weighting = "binary"
    """How interaction weights enter ``X`` and the history (:mod:`tastebud.models.signals`)."""
    max_items: int = Field(default=10_000, ge=1)
    """In the primal form the model is a dense ``items x items`` matrix: beyond this many items
    only the most popular ones can be recommended (memory grows with the square, time with the
    cube). The dual form (fewer users than items) holds every item."""

    @classmethod
    def search_space(cls) -> dict[str, list[Any]]:
        return {
            "l2": [30.0, 100.0, 300.0, 1000.0, 3000.0],
            "weighting": ["binary", "log", "bm25"],
        }


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
    weighting: Weighting = "binary"
    """How interaction weights enter ``X`` and the history (:mod:`tastebud.models.signals`)."""
    max_items: int = Field(default=10_000, ge=1)
    """As for EASE: in the primal form the most popular items beyond this many are not
    recommended."""

    @classmethod
    def search_space(cls) -> dict[str, list[Any]]:
        return {
            "l2": [100.0, 300.0, 1000.0, 3000.0],
            "history_half_life": [3.0, 6.0, 12.0, 30.0, None],
            "alpha": [0.0, 0.3, 1.0, 3.0],
            "seq_half_life": [2.0, 5.0],
            "future_window": [1, 10],
            "weighting": ["binary", "log", "bm25"],
        }

    @classmethod
    def time_blind(cls) -> dict[str, Any]:
        fields = cls.model_fields
        held = ("window", "seq_half_life", "future_window", "future_half_life")
        return {"alpha": 0.0, "history_half_life": None} | {k: fields[k].default for k in held}


class _ItemItem(Recommender[_C]):
    """Scores = user history (possibly recency-weighted) x an item-item matrix ``B``, held
    explicitly (primal) or through the users' kernel (dual, see the module docstring)."""

    _b: NDArray[np.float32] | None
    _dual: _Dual | None
    _cols: NDArray[np.int32]
    _history: csr_matrix

    def _weighting(self) -> Weighting:
        weighting: Weighting = getattr(self.config, "weighting", "binary")
        return weighting

    def _history_of(self, data: TrainingData) -> csr_matrix:
        return data.weighted(self._weighting())

    def _sequence(self, data: TrainingData) -> bool:
        """Whether ``B`` has a "comes next" part on this data (then it is solved primal)."""
        return False

    def _primal(self, data: TrainingData) -> NDArray[np.float64]:
        """``B`` in the primal form, on data restricted to the recommendable items."""
        return ease_matrix(data.weighted(self._weighting()), self._l2())

    def _l2(self) -> float:
        return float(self.config.l2)  # type: ignore[attr-defined]

    def _fit(self, data: TrainingData, options: FitOptions) -> None:
        cap = int(getattr(self.config, "max_items", 10_000))
        self._b, self._dual = None, None
        if not self._sequence(data) and _dual_pays(data.n_users, data.n_items):
            self._cols = np.arange(data.n_items, dtype=np.int32)
            self._dual = _Dual.solve(data, self._weighting(), self._l2())
        else:
            counts = np.bincount(data.item, minlength=data.n_items)
            if data.n_items > cap:
                cols = np.sort(np.argsort(-counts, kind="stable")[:cap]).astype(np.int32)
            else:
                cols = np.arange(data.n_items, dtype=np.int32)
            self._cols = cols
            self._b = self._primal(_restrict(data, cols)).astype(np.float32)
        self._history = self._history_of(data).astype(np.float32)

    def update(self, data: TrainingData, users: NDArray[np.integer[Any]]) -> None:
        """New histories (the item-item relations stay until the next full fit)."""
        self.n_users = data.n_users
        self._history = self._history_of(data).astype(np.float32)

    def _apply(self, h: csr_matrix) -> NDArray[np.float32]:
        """``h B`` for history rows ``h`` over ``self._cols``."""
        if self._dual is not None:
            return self._dual.apply(h)
        assert self._b is not None
        return np.asarray(h @ self._b, dtype=np.float32)

    def _scores(self, users: NDArray[np.int64]) -> NDArray[np.float32]:
        h = self._history[users]
        part = self._apply(h if len(self._cols) == self.n_items else h[:, self._cols])
        if len(self._cols) == self.n_items:
            return part
        out = np.full((len(users), self.n_items), -np.inf, np.float32)
        out[:, self._cols] = part
        return out

    def _item_scores(self, items: NDArray[np.int64], w: NDArray[np.float32]) -> NDArray[np.float32]:
        pos = np.searchsorted(self._cols, items)
        pos = np.minimum(pos, len(self._cols) - 1)
        known = self._cols[pos] == items
        if self._dual is not None:
            h = csr_matrix(
                (w[known], (np.zeros(int(known.sum()), np.int64), pos[known])),
                shape=(1, len(self._cols)),
            )
            part = self._dual.apply(h)[0]
        else:
            assert self._b is not None
            part = w[known] @ self._b[pos[known]]
        if len(self._cols) == self.n_items:
            return np.asarray(part, np.float32)
        out = np.zeros(self.n_items, np.float32)
        out[self._cols] = part
        return out

    def _item_similarity(self, a: NDArray[np.int64], b: NDArray[np.int64]) -> NDArray[np.float32]:
        pa = np.minimum(np.searchsorted(self._cols, a), len(self._cols) - 1)
        pb = np.minimum(np.searchsorted(self._cols, b), len(self._cols) - 1)
        if self._dual is not None:
            out = self._dual.entries(pa, pb)
        else:
            assert self._b is not None
            out = self._b[np.ix_(pa, pb)].astype(np.float32)
        out[self._cols[pa] != a, :] = 0
        out[:, self._cols[pb] != b] = 0
        return out

    def _forget(self, users: NDArray[np.int64]) -> None:
        self._history = zero_rows(self._history, users)
        if self._dual is not None:
            self._dual.forget(users)

    def _params(self) -> dict[str, NDArray[Any]]:
        out: dict[str, NDArray[Any]] = {"cols": self._cols}
        if self._dual is not None:
            out.update(self._dual.params())
        else:
            assert self._b is not None
            out["b"] = self._b
        return {**out, **csr_params("history", self._history)}

    def _load(self, params: Mapping[str, NDArray[Any]]) -> None:
        self._cols = np.asarray(params["cols"], np.int32)
        self._b = np.asarray(params["b"], np.float32) if "b" in params else None
        self._dual = _Dual.load(params) if "b" not in params else None
        self._history = csr_from("history", params)


DUAL_MAX_USERS = 4096
"""Above this many users the dual form's per-request work (``users²`` operations) would slow
serving down more than the primal form's (a few history rows of ``B``)."""


def _dual_pays(n_users: int, n_items: int) -> bool:
    """Whether the dual form is the smaller one: at most half as many users as items (memory
    and fit time grow with the square and the cube of the smaller side), and few enough users
    for a request to stay quick."""
    return 2 * n_users <= n_items and n_users <= DUAL_MAX_USERS


@dataclass
class _Dual:
    """EASE through the users' kernel: ``B = I − P diag(P)⁻¹`` with
    ``P = (I − Xᵀ M X) / λ``, ``M = (XXᵀ + λI)⁻¹``, never formed (module docstring)."""

    x: csr_matrix
    """The weighted training matrix, ``users x items``."""
    m: NDArray[np.float32]
    """``(XXᵀ + λI)⁻¹``."""
    d: NDArray[np.float32]
    """``diag(P)``."""
    l2: float
    xt: csr_matrix = field(init=False, repr=False)
    """``Xᵀ`` in rows (items x users), made once: explanations read item columns per request."""

    def __post_init__(self) -> None:
        self.xt = csr_matrix(self.x.T)

    def forget(self, users: NDArray[np.int64]) -> None:
        """Empty the given users' rows of ``X``."""
        self.x = zero_rows(self.x, users)
        self.xt = csr_matrix(self.x.T)

    @classmethod
    def solve(cls, data: TrainingData, weighting: Weighting, l2: float) -> _Dual:
        """Fit on ``data``; the eigendecomposition of ``XXᵀ`` is cached on ``data`` so that
        other values of λ reuse it."""
        x = data.weighted(weighting)
        key = f"dual-eigh-{weighting}"
        cached = data._cache.get(key)
        if cached is None:
            kernel = np.asarray((x @ x.T).toarray(), dtype=np.float64)
            sigma, v = np.linalg.eigh(kernel)
            cached = data._cache[key] = (np.maximum(sigma, 0.0), v)
        sigma, v = cached
        inv = 1.0 / (sigma + l2)
        m = (v * inv) @ v.T
        xv = np.asarray(x.T @ v)  # items x users: row j is (Vᵀ x_j)ᵀ
        np.square(xv, out=xv)
        d = np.maximum((1.0 - xv @ inv) / l2, 1e-12 / l2)
        return cls(x.astype(np.float32), m.astype(np.float32), d.astype(np.float32), l2)

    def apply(self, h: csr_matrix) -> NDArray[np.float32]:
        """``h B`` for history rows ``h`` (``n x items``)."""
        t = np.asarray((h @ self.xt).toarray(), dtype=np.float32) @ self.m
        tx = np.asarray(self.xt @ t.T, dtype=np.float32).T  # t X, n x items
        dense = h.toarray().astype(np.float32)
        hp = (dense - tx) / np.float32(self.l2)
        out: NDArray[np.float32] = dense - hp / self.d
        return out

    def entries(self, a: NDArray[np.int64], b: NDArray[np.int64]) -> NDArray[np.float32]:
        """``B[a][:, b]``."""
        xa = np.asarray(self.xt[a].toarray(), np.float32)
        xb = np.asarray(self.xt[b].toarray(), np.float32)
        same = (a[:, None] == b[None, :]).astype(np.float32)
        p = (same - (xa @ self.m) @ xb.T) / np.float32(self.l2)
        out: NDArray[np.float32] = same - p / self.d[b]
        return out

    def params(self) -> dict[str, NDArray[Any]]:
        """As named arrays (``get_params``)."""
        return {
            "dual_m": self.m,
            "dual_d": self.d,
            "dual_l2": np.array([self.l2]),
            **csr_params("dual_x", self.x),
        }

    @classmethod
    def load(cls, params: Mapping[str, NDArray[Any]]) -> _Dual:
        """The inverse of :meth:`params`."""
        return cls(
            csr_from("dual_x", params),
            np.asarray(params["dual_m"], np.float32),
            np.asarray(params["dual_d"], np.float32),
            float(params["dual_l2"][0]),
        )


class EASE(_ItemItem[EASEConfig]):
    """Embarrassingly shallow autoencoder (peer)."""

    name = "ease"
    config_class = EASEConfig
    peer = True
    supports_update = True


class SeqLinear(_ItemItem[SeqLinearConfig]):
    """Tastebud's sequence- and recency-aware linear model (see the module docstring)."""

    name = "tastebud_seq"
    config_class = SeqLinearConfig
    supports_update = True

    def _history_of(self, data: TrainingData) -> csr_matrix:
        return recency_weights(data, self.config.history_half_life, self.config.weighting)

    def _sequence(self, data: TrainingData) -> bool:
        return self.config.alpha > 0 and data.has_time()

    def _primal(self, data: TrainingData) -> NDArray[np.float64]:
        c = self.config
        x = data.weighted(c.weighting)
        if not self._sequence(data):
            return ease_matrix(x, c.l2)
        s, y = next_item_examples(
            data, c.window, c.seq_half_life, c.future_window, c.future_half_life
        )
        gram = (x.T @ x).toarray().astype(np.float64)
        a = gram + c.alpha * (s.T @ s).toarray()
        a[np.diag_indices_from(a)] += c.l2
        r = gram + c.alpha * (s.T @ y).toarray()
        b: NDArray[np.float64] = solve(
            a, r, assume_a="pos", overwrite_a=True, overwrite_b=True, check_finite=False
        )
        if not b.flags.writeable:
            b = b.copy()
        np.fill_diagonal(b, 0.0)
        return b


def ease_matrix(x: csr_matrix, l2: float) -> NDArray[np.float64]:
    """EASE's closed form: ``B = I - P diag(1/diag(P))``, ``P = (XᵀX + λI)⁻¹``, zero diagonal.

    >>> x = csr_matrix(np.array([[1, 1, 0], [1, 0, 1], [0, 1, 1]], np.float32))
    >>> b = ease_matrix(x, 1.0)
    >>> bool(np.allclose(np.diag(b), 0)), bool(np.allclose(b, b.T))
    (True, True)
    """
    g = (x.T @ x).toarray().astype(np.float64)
    g[np.diag_indices_from(g)] += l2
    p = _spd_inverse(g)
    d = np.diag(p).copy()
    p /= -d[None, :]
    np.fill_diagonal(p, 0.0)
    return p


def _spd_inverse(a: NDArray[np.float64]) -> NDArray[np.float64]:
    """Inverse of a symmetric positive definite matrix through its Cholesky factor (half the
    work of a general inverse)."""
    if a.shape[0] == 0:
        return a
    c, info = lapack.dpotrf(a, lower=False)
    if info == 0:
        inv, info = lapack.dpotri(c, lower=False, overwrite_c=True)
    if info != 0:  # not positive definite in floating point: the general route
        return np.asarray(np.linalg.inv(a), dtype=np.float64)
    out: NDArray[np.float64] = np.triu(inv)
    out += np.triu(out, 1).T
    return out


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
