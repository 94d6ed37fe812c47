"""The recommender protocol shared by every model: data in, config, fit, recommend, params.

Models are pure algorithms (STYLE.md rule 5): dense integer indices and arrays in, arrays out, no
I/O and no imports from the rest of Tastebud but ``ids``. Persistence is ``get_params()`` (a
mapping of name to NumPy array, saved as ``.npz`` with ``allow_pickle=False``) plus
``config.model_dump()`` (JSON); ``from_params(config, params)`` rebuilds an identical model.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, Self, TypeVar

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict
from scipy.sparse import csr_matrix

from tastebud.models.ranking import Recommendations, top_k
from tastebud.models.signals import Weighting, is_synthetic_time, transform_weights

__all__ = [
    "FitOptions",
    "ModelConfig",
    "NotFitted",
    "Recommender",
    "TrainingData",
    "csr_from",
    "csr_params",
    "recency_weights",
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

    @classmethod
    def time_blind(cls) -> dict[str, Any]:
        """The settings that only matter when timestamps order what users did, each with the
        value that ignores time. On data without real time, tuning holds these values and
        does not search them (``{}``: the model has no such settings)."""
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

    ``ts`` is in seconds (any origin); data without real timestamps (all equal, or synthesised
    from a file's order: see :func:`~tastebud.models.signals.is_synthetic_time`) makes
    time-aware models fall back to their time-blind behaviour.
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

    def weighted(self, weighting: Weighting) -> csr_matrix:
        """The user x item matrix of summed weights under ``weighting``
        (:func:`~tastebud.models.signals.transform_weights`; ``binary`` is :meth:`matrix`)."""
        if weighting == "binary":
            return self.matrix(binary=True)
        key = f"weighted-{weighting}"
        if key not in self._cache:
            self._cache[key] = transform_weights(self.matrix(binary=False), weighting)
        return self._cache[key]  # type: ignore[no-any-return]

    def sequence_order(self) -> NDArray[np.int64]:
        """Row order by (user, time, seeded random tie-break): each user's history in time."""
        if "order" not in self._cache:
            tie = np.random.default_rng(0).random(len(self))
            self._cache["order"] = np.lexsort((tie, self.ts, self.user))
        return self._cache["order"]  # type: ignore[no-any-return]

    def has_time(self) -> bool:
        """Whether the timestamps order what users did: not all equal, and not synthesised
        (:func:`~tastebud.models.signals.is_synthetic_time`)."""
        if "has_time" not in self._cache:
            self._cache["has_time"] = (
                len(self) > 1
                and bool(np.ptp(self.ts) > 0)
                and not is_synthetic_time(self.user, self.ts)
            )
        return bool(self._cache["has_time"])


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


def recency_weights(
    data: TrainingData, half_life: float | None, weighting: Weighting = "binary"
) -> csr_matrix:
    """User x item matrix where each user's interactions weigh ``0.5 ** (back / half_life)``,
    ``back`` = how many of the user's interactions came after this one (0 for the latest),
    times the pair's weight under ``weighting`` (1 with ``binary``).

    Position rather than clock time: a user's last session is what predicts their next items,
    however long ago it was. With ``half_life=None`` (or no real time) only the weighting counts.
    """
    base = data.weighted(weighting)
    if half_life is None or not data.has_time():
        return base
    order = data.sequence_order()
    users = data.user[order]
    n = len(users)
    starts = np.r_[0, np.flatnonzero(np.diff(users)) + 1]
    counts = np.diff(np.r_[starts, n])
    back = np.repeat(starts + counts, counts) - 1 - np.arange(n)
    w = (0.5 ** (back / half_life)).astype(np.float32)
    # A repeated pair keeps its most recent weight (the maximum), not the sum.
    recency = _max_duplicates(users, data.item[order], w, (data.n_users, data.n_items))
    if weighting == "binary":
        return recency
    return csr_matrix(recency.multiply(base), dtype=np.float32)


def _max_duplicates(
    users: NDArray[Any], items: NDArray[Any], w: NDArray[np.float32], shape: tuple[int, int]
) -> csr_matrix:
    key = users.astype(np.int64) * shape[1] + items
    order = np.lexsort((-w, key))
    first = np.r_[True, key[order][1:] != key[order][:-1]]
    keep = order[first]
    return csr_matrix((w[keep], (users[keep], items[keep])), shape=shape)
