"""The recommender protocol shared by every model: data in, config, fit, recommend, params.

Models are pure algorithms (STYLE.md rule 5): dense integer indices and arrays in, arrays out, no
I/O and no imports from the rest of Tastebud but ``ids``. Persistence is ``get_params()`` (a
mapping of name to NumPy array, saved as ``.npz`` with ``allow_pickle=False``) plus
``config.model_dump()`` (JSON); ``from_params(config, params)`` rebuilds an identical model.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, Self, TypeVar

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict
from scipy.sparse import csr_matrix

__all__ = [
    "FitOptions",
    "ModelConfig",
    "NotFitted",
    "Recommendations",
    "Recommender",
    "TrainingData",
    "csr_from",
    "csr_params",
    "recency_weights",
    "standardise",
    "top_k",
    "zero_rows",
]


C = TypeVar("C", bound="ModelConfig")


class NotFitted(RuntimeError):
    """A model was asked to recommend (or save) before ``fit``."""


class ModelConfig(BaseModel):
    """Base of every model's frozen hyper-parameter object.

    Configs refuse nonsense, as LensKit's do: an unknown field, or a value outside its field's
    bounds (a count below 1, a rate or a half-life not above 0, a negative penalty or weight),
    raises ``pydantic.ValidationError`` (a ``ValueError``) naming the field. Every numeric field
    of a subclass carries a bound (a contract test checks it), and every value of its
    ``search_space`` lies within the bounds.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    @classmethod
    def search_space(cls) -> dict[str, list[Any]]:
        """Candidate values per hyper-parameter, tuned on the validation split only.

        Tuning is a coordinate search: starting from the defaults, each parameter in turn takes
        the value with the best validation NDCG@10, the others fixed; two passes.
        """
        return {}


@dataclass(frozen=True)
class FitOptions:
    """How to fit, as opposed to what to fit (hyper-parameters live in the config)."""

    seed: int = 0
    """Seed for every random choice, so that a fit is reproducible (at least 0)."""
    n_threads: int = 0
    """Threads for libraries that use them (``0``: all cores)."""

    def __post_init__(self) -> None:
        for name in ("seed", "n_threads"):
            if getattr(self, name) < 0:
                raise ValueError(f"FitOptions.{name} must be at least 0, got {getattr(self, name)}")


@dataclass(frozen=True)
class TrainingData:
    """Interactions as parallel arrays of dense indices.

    ``ts`` is in seconds (any origin); data without real timestamps gives every interaction the
    same time, and time-aware models then fall back to their time-blind behaviour.
    ``user_groups`` (optional) assigns each user a group index, e.g. a segment, for models that
    use it; ``-1`` means none. ``context`` (optional) does the same per interaction.
    """

    n_users: int
    n_items: int
    user: NDArray[np.int32]
    item: NDArray[np.int32]
    ts: NDArray[np.float64]
    weight: NDArray[np.float32]
    user_groups: NDArray[np.int32] | None = None
    context: NDArray[np.int32] | None = None
    """Optional context index per interaction (e.g. device type or hour); ``-1`` means none."""
    _cache: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_arrays(
        cls,
        n_users: int,
        n_items: int,
        user: Any,
        item: Any,
        ts: Any = None,
        weight: Any = None,
        user_groups: Any = None,
        context: Any = None,
    ) -> TrainingData:
        """Build from array-likes (``ts`` defaults to 0, ``weight`` to 1)."""
        u = np.asarray(user, dtype=np.int32)
        n = len(u)
        return cls(
            n_users=int(n_users),
            n_items=int(n_items),
            user=u,
            item=np.asarray(item, dtype=np.int32),
            ts=np.zeros(n) if ts is None else np.asarray(ts, dtype=np.float64),
            weight=np.ones(n, np.float32) if weight is None else np.asarray(weight, np.float32),
            user_groups=None if user_groups is None else np.asarray(user_groups, np.int32),
            context=None if context is None else np.asarray(context, np.int32),
        )

    def __len__(self) -> int:
        return len(self.user)

    def matrix(self, *, binary: bool = True) -> csr_matrix:
        """The user x item matrix (``float32``; repeated pairs summed, or 1 when ``binary``)."""
        key = f"matrix-{binary}"
        if key not in self._cache:
            values = np.ones(len(self), np.float32) if binary else self.weight
            m = csr_matrix(
                (values, (self.user, self.item)),
                shape=(self.n_users, self.n_items),
                dtype=np.float32,
            )
            m.sum_duplicates()
            if binary:
                m.data[:] = 1.0
            self._cache[key] = m
        return self._cache[key]  # type: ignore[no-any-return]

    def sequence_order(self) -> NDArray[np.int64]:
        """Row order by (user, time, seeded random tie-break): each user's history in time."""
        if "order" not in self._cache:
            tie = np.random.default_rng(0).random(len(self))
            self._cache["order"] = np.lexsort((tie, self.ts, self.user))
        return self._cache["order"]  # type: ignore[no-any-return]

    def has_time(self) -> bool:
        """Whether the timestamps carry any information (not all equal)."""
        return len(self) > 1 and bool(np.ptp(self.ts) > 0)


@dataclass(frozen=True)
class Recommendations:
    """Top-k items per requested user: ``item_idx[r]`` and ``scores[r]`` for the ``r``-th user,
    best first, ``-1`` / ``-inf`` padding where fewer than ``k`` items qualify."""

    item_idx: NDArray[np.int32]
    scores: NDArray[np.float32]

    def __iter__(self) -> Iterator[NDArray[Any]]:
        yield self.item_idx
        yield self.scores


def top_k(
    scores: NDArray[np.floating[Any]],
    k: int,
    exclude: csr_matrix | None = None,
    rows: NDArray[np.integer[Any]] | None = None,
) -> Recommendations:
    """Best ``k`` columns per row of a dense score block, excluding ``exclude[rows]`` entries.

    Ties are broken by the lower item index, so results are deterministic.
    """
    s = np.array(scores, dtype=np.float32, copy=True)
    n_rows, n_items = s.shape
    if exclude is not None and exclude.nnz:
        ex = exclude if rows is None else exclude[np.asarray(rows)]
        r, c = ex.nonzero()
        s[r, c] = -np.inf
    k_eff = min(k, n_items)
    items = np.full((n_rows, k), -1, dtype=np.int32)
    out = np.full((n_rows, k), -np.inf, dtype=np.float32)
    if k_eff <= 0 or n_rows == 0:
        return Recommendations(items, out)
    # A lower bound for each row's k-th best score, cheaply: the k-th best of the maxima of
    # blocks of 64 columns (k block maxima are k distinct scores at least that high). Only
    # scores above it are sorted, exactly, by (score desc, item asc): 5-10x faster than an
    # argpartition over the whole row, and ties break deterministically.
    block = 64
    n_blocks = -(-n_items // block)
    padded = s
    if n_blocks * block != n_items:
        fill = np.full((n_rows, n_blocks * block - n_items), -np.inf, np.float32)
        padded = np.concatenate([s, fill], axis=1)
    maxima = padded.reshape(n_rows, n_blocks, block).max(axis=2)
    if n_blocks > k_eff:
        threshold = -np.partition(-maxima, k_eff - 1, axis=1)[:, k_eff - 1]
    else:
        threshold = np.full(n_rows, -np.inf, np.float32)
    # Only blocks whose maximum reaches the threshold can hold a top-k score.
    br, bc = np.nonzero((maxima >= threshold[:, None]) & np.isfinite(maxima))
    vals = padded.reshape(n_rows, n_blocks, block)[br, bc].ravel()
    r = np.repeat(br, block)
    c = (bc[:, None] * block + np.arange(block)).ravel()
    sel = (vals >= threshold[r]) & np.isfinite(vals)
    r, c, v = r[sel], c[sel], vals[sel]
    order = np.lexsort((c, -v, r))
    r, c, v = r[order], c[order], v[order]
    rank = np.arange(len(r)) - np.searchsorted(r, r)
    keep = rank < k_eff
    items[r[keep], rank[keep]] = c[keep]
    out[r[keep], rank[keep]] = v[keep]
    return Recommendations(items, out)


class Recommender(ABC, Generic[C]):
    """Base class of every recommender (the shared protocol).

    Subclasses set ``name`` and ``config_class``, implement ``fit``, ``_scores`` (dense scores
    for known users) and the params round-trip. ``recommend`` handles unknown users (index ``-1``
    or beyond the fitted range): they get the model's fallback, by default the most popular
    training items.
    """

    name: ClassVar[str]
    config_class: ClassVar[type[ModelConfig]]
    peer: ClassVar[bool] = False
    """Whether this is a reference (peer) algorithm rather than one of Tastebud's own."""
    supports_update: ClassVar[bool] = False
    """Whether ``update`` folds in new interactions without a full refit."""

    def __init__(self, config: C | None = None) -> None:
        self.config: C = config if config is not None else self.config_class()  # type: ignore[assignment]
        self._fitted = False
        self._popular: NDArray[np.float32] | None = None
        self.n_users = 0
        self.n_items = 0

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.config!r})"

    def is_fitted(self) -> bool:
        """Whether ``fit`` (or ``from_params``) has run."""
        return self._fitted

    def fit(self, data: TrainingData, options: FitOptions | None = None) -> Self:
        """Fit on ``data``; returns ``self``."""
        opts = options or FitOptions()
        self.n_users, self.n_items = data.n_users, data.n_items
        counts = np.bincount(data.item, minlength=data.n_items).astype(np.float32)
        self._popular = counts
        self._fit(data, opts)
        self._fitted = True
        return self

    def update(self, data: TrainingData, users: NDArray[np.integer[Any]]) -> None:
        """Fold in ``data`` (all interactions, old and new) for ``users`` without a full refit.

        Raises:
            NotImplementedError: the model does not support incremental updates.
        """
        raise NotImplementedError(f"{self.name} has no incremental update; refit it")

    def recommend(
        self, users: NDArray[np.integer[Any]], k: int, *, exclude: csr_matrix | None = None
    ) -> Recommendations:
        """Top ``k`` items for each user index in ``users``, skipping ``exclude[user]`` items
        (``exclude`` has one row per *fitted* user, e.g. the training matrix)."""
        if not self._fitted:
            raise NotFitted(f"{self.name} is not fitted")
        users = np.asarray(users, dtype=np.int64)
        known = (users >= 0) & (users < self.n_users)
        items = np.full((len(users), k), -1, dtype=np.int32)
        scores = np.full((len(users), k), -np.inf, dtype=np.float32)

        def run(lo: int) -> None:  # bounded memory: 1024 x n_items scores at a time
            chunk = np.arange(lo, min(lo + 1024, len(users)))
            ku = chunk[known[chunk]]
            if len(ku):
                rec = top_k(self._scores(users[ku].astype(np.int64)), k, exclude, users[ku])
                items[ku], scores[ku] = rec.item_idx, rec.scores

        starts = range(0, len(users), 1024)
        if len(starts) > 2:
            # NumPy releases the GIL in the heavy parts: chunks run in parallel on the cores.
            with ThreadPoolExecutor(min(4, os.cpu_count() or 1)) as pool:
                list(pool.map(run, starts))
        else:
            for lo in starts:
                run(lo)
        cold = np.flatnonzero(~known)
        if len(cold):
            assert self._popular is not None
            rec = top_k(np.broadcast_to(self._popular, (len(cold), self.n_items)), k)
            items[cold], scores[cold] = rec.item_idx, rec.scores
        return Recommendations(items, scores)

    def scores(self, users: NDArray[np.integer[Any]]) -> NDArray[np.float32]:
        """Dense scores (``len(users) x n_items``) of fitted users (no exclusions applied)."""
        if not self._fitted:
            raise NotFitted(f"{self.name} is not fitted")
        return self._scores(np.asarray(users, dtype=np.int64))

    def item_scores(
        self, items: NDArray[np.integer[Any]], weights: NDArray[np.floating[Any]] | None = None
    ) -> NDArray[np.float32]:
        """Scores of every item for a history given as item indices (a live session, or one
        item for "similar items"), weighted by ``weights`` (default 1 each). What the model
        would add to a user's scores had these items been in their history; zeros for a
        model that cannot relate items (popularity)."""
        if not self._fitted:
            raise NotFitted(f"{self.name} is not fitted")
        idx = np.asarray(items, dtype=np.int64)
        w = np.ones(len(idx), np.float32) if weights is None else np.asarray(weights, np.float32)
        keep = (idx >= 0) & (idx < self.n_items)
        if not keep.any():
            return np.zeros(self.n_items, np.float32)
        return self._item_scores(idx[keep], w[keep])

    def _item_scores(self, items: NDArray[np.int64], w: NDArray[np.float32]) -> NDArray[np.float32]:
        return np.zeros(self.n_items, np.float32)

    def item_similarity(
        self, anchors: NDArray[np.integer[Any]], targets: NDArray[np.integer[Any]]
    ) -> NDArray[np.float32]:
        """How much the model relates each anchor item to each target item
        (``len(anchors) x len(targets)``, the entries of :meth:`item_scores` for single items),
        without scoring the whole catalogue: what explanations need per request."""
        if not self._fitted:
            raise NotFitted(f"{self.name} is not fitted")
        a = np.asarray(anchors, dtype=np.int64)
        b = np.asarray(targets, dtype=np.int64)
        out = np.zeros((len(a), len(b)), np.float32)
        ok_a = (a >= 0) & (a < self.n_items)
        ok_b = (b >= 0) & (b < self.n_items)
        if ok_a.any() and ok_b.any():
            sub = self._item_similarity(a[ok_a], b[ok_b])
            out[np.ix_(ok_a, ok_b)] = sub
        return out

    def _item_similarity(self, a: NDArray[np.int64], b: NDArray[np.int64]) -> NDArray[np.float32]:
        return np.stack(
            [self._item_scores(a[i : i + 1], np.ones(1, np.float32))[b] for i in range(len(a))]
        )

    def forget_users(self, users: NDArray[np.integer[Any]]) -> None:
        """Remove everything the model holds per user for ``users`` (factors, histories, group
        memberships): they then score like a user with no history. What the model learned in
        aggregate (item relations, popularity) stays until the next full training."""
        if not self._fitted:
            raise NotFitted(f"{self.name} is not fitted")
        idx = np.asarray(users, dtype=np.int64)
        idx = idx[(idx >= 0) & (idx < self.n_users)]
        if len(idx):
            self._forget(idx)

    def _forget(self, users: NDArray[np.int64]) -> None:
        return None

    def get_params(self) -> dict[str, NDArray[Any]]:
        """Everything needed to rebuild the fitted model, as named arrays (no objects)."""
        if not self._fitted:
            raise NotFitted(f"{self.name} is not fitted")
        assert self._popular is not None
        out = {"_popular": self._popular, "_shape": np.array([self.n_users, self.n_items])}
        out.update(self._params())
        return out

    @classmethod
    def from_params(cls, config: C | Mapping[str, Any], params: Mapping[str, NDArray[Any]]) -> Self:
        """Rebuild a fitted model from its config and ``get_params()`` output."""
        cfg = config if isinstance(config, ModelConfig) else cls.config_class(**config)
        model = cls(cfg)  # type: ignore[arg-type]
        model.n_users, model.n_items = (int(v) for v in params["_shape"])
        model._popular = np.asarray(params["_popular"], dtype=np.float32)
        model._load(params)
        model._fitted = True
        return model

    # -- to implement ----------------------------------------------------------------------------
    @abstractmethod
    def _fit(self, data: TrainingData, options: FitOptions) -> None: ...

    @abstractmethod
    def _scores(self, users: NDArray[np.int64]) -> NDArray[np.float32]:
        """Dense scores (``len(users) x n_items``) for known users."""

    @abstractmethod
    def _params(self) -> dict[str, NDArray[Any]]: ...

    @abstractmethod
    def _load(self, params: Mapping[str, NDArray[Any]]) -> None: ...


def standardise(x: NDArray[np.float32]) -> NDArray[np.float32]:
    """Each row (last axis) standardised over its finite entries, so that scores of different
    sources become comparable; non-finite entries become ``-inf``, a row without a finite entry
    all zeros.

    >>> standardise(np.array([1.0, 3.0, -np.inf], np.float32)).tolist()
    [-1.0, 1.0, -inf]
    """
    x = np.asarray(x, dtype=np.float32)
    if x.shape[-1] == 0:
        return x.copy()
    finite = np.isfinite(x)
    if finite.all():  # the usual case: no masking, and a third fewer passes than x.std()
        scaled: NDArray[np.float32] = x - x.mean(axis=-1, keepdims=True)
        var = np.einsum("...i,...i->...", scaled, scaled)[..., None] / max(x.shape[-1], 1)
        std = np.sqrt(var)
        scaled /= np.where(std > 0, std, 1.0).astype(np.float32)
        return scaled
    n = np.maximum(finite.sum(axis=-1, keepdims=True), 1)
    mean = np.where(finite, x, 0.0).sum(axis=-1, keepdims=True) / n
    centred = np.where(finite, x - mean, 0.0)
    std = np.sqrt((centred**2).sum(axis=-1, keepdims=True) / n)
    out = np.where(finite, centred / np.where(std > 0, std, 1.0), -np.inf)
    return np.where(finite.any(axis=-1, keepdims=True), out, 0.0).astype(np.float32)


def zero_rows(m: csr_matrix, rows: NDArray[np.int64]) -> csr_matrix:
    """``m`` with the given rows emptied (stored zeros removed)."""
    keep = np.ones(m.shape[0], dtype=np.float32)
    keep[rows[rows < m.shape[0]]] = 0
    from scipy.sparse import diags

    out = csr_matrix(diags(keep) @ m, dtype=m.dtype)
    out.eliminate_zeros()
    return out


def csr_params(prefix: str, m: csr_matrix) -> dict[str, NDArray[Any]]:
    """A sparse matrix as plain arrays (for ``get_params``)."""
    return {
        f"{prefix}_data": m.data,
        f"{prefix}_indices": m.indices,
        f"{prefix}_indptr": m.indptr,
        f"{prefix}_shape": np.array(m.shape),
    }


def csr_from(prefix: str, params: Mapping[str, NDArray[Any]]) -> csr_matrix:
    """Inverse of ``csr_params``."""
    rows, cols = (int(v) for v in params[f"{prefix}_shape"])
    shape = (rows, cols)
    return csr_matrix(
        (params[f"{prefix}_data"], params[f"{prefix}_indices"], params[f"{prefix}_indptr"]),
        shape=shape,
    )


def recency_weights(data: TrainingData, half_life: float | None) -> csr_matrix:
    """User x item matrix where each user's interactions weigh ``0.5 ** (back / half_life)``,
    ``back`` = how many of the user's interactions came after this one (0 for the latest).

    Position rather than clock time: a user's last session is what predicts their next items,
    however long ago it was. With ``half_life=None`` (or no timestamps) every weight is 1.
    """
    if half_life is None or not data.has_time():
        return data.matrix(binary=True)
    order = data.sequence_order()
    users = data.user[order]
    n = len(users)
    starts = np.r_[0, np.flatnonzero(np.diff(users)) + 1]
    counts = np.diff(np.r_[starts, n])
    back = np.repeat(starts + counts, counts) - 1 - np.arange(n)
    w = (0.5 ** (back / half_life)).astype(np.float32)
    # A repeated pair keeps its most recent weight (the maximum), not the sum.
    return _max_duplicates(users, data.item[order], w, (data.n_users, data.n_items))


def _max_duplicates(
    users: NDArray[Any], items: NDArray[Any], w: NDArray[np.float32], shape: tuple[int, int]
) -> csr_matrix:
    key = users.astype(np.int64) * shape[1] + items
    order = np.lexsort((-w, key))
    first = np.r_[True, key[order][1:] != key[order][:-1]]
    keep = order[first]
    return csr_matrix((w[keep], (users[keep], items[keep])), shape=shape)
