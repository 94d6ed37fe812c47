"""Matrix factorisation through the ``implicit`` library: ALS (with fold-in updates) and BPR."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

import numpy as np
from implicit.cpu.als import AlternatingLeastSquares
from implicit.cpu.bpr import BayesianPersonalizedRanking
from numpy.typing import NDArray
from pydantic import Field, model_validator
from threadpoolctl import threadpool_limits

from tastebud.models._base import FitOptions, ModelConfig, Recommender, TrainingData
from tastebud.models.signals import Weighting

__all__ = ["ALS", "ALSConfig", "BPR", "BPRConfig"]

_C = TypeVar("_C", bound=ModelConfig)


class ALSConfig(ModelConfig):
    """Implicit-feedback ALS (Hu, Koren and Volinsky 2008) as implemented by ``implicit``.

    >>> d = TrainingData.from_arrays(4, 4, [0, 0, 1, 1, 2, 3], [0, 1, 0, 1, 2, 3])
    >>> m = ALS(ALSConfig(factors=4, iterations=5)).fit(d)
    >>> m.recommend([0], 2, exclude=d.matrix()).item_idx.shape
    (1, 2)
    """

    factors: int = Field(default=64, ge=1)
    """Latent dimensions."""
    regularization: float = Field(default=0.05, ge=0)
    """L2 penalty on the factors."""
    alpha: float = Field(default=2.0, gt=0)
    """Confidence scaling: an interaction of (transformed) weight ``w`` counts
    ``1 + alpha * w`` (``implicit`` multiplies the matrix by it, so 0 would erase every
    interaction)."""
    iterations: int = Field(default=15, ge=1)
    """ALS sweeps."""
    weighting: Weighting = "binary"
    """What ``w`` is (:mod:`tastebud.models.signals`): 1 per (user, item) with ``binary``, the
    summed interaction weights with ``raw`` (Hu et al.'s confidence), or their ``log`` or
    ``bm25`` transform; each rescaled to average 1."""

    @model_validator(mode="before")
    @classmethod
    def _binary_flag(cls, data: Any) -> Any:
        # Configs saved before ``weighting`` existed carry ``binary: bool``.
        if isinstance(data, dict) and "binary" in data:
            data = dict(data)
            binary = data.pop("binary")
            data.setdefault("weighting", "binary" if binary else "raw")
        return data

    @classmethod
    def search_space(cls) -> dict[str, list[Any]]:
        return {
            "factors": [32, 64, 128, 256],
            "regularization": [0.01, 0.1, 1.0, 10.0],
            "alpha": [0.5, 1.0, 2.0, 5.0, 20.0],
            "iterations": [15, 30],
            "weighting": ["binary", "log", "bm25", "raw"],
        }


class BPRConfig(ModelConfig):
    """Bayesian personalised ranking (Rendle et al. 2009) as implemented by ``implicit``."""

    factors: int = Field(default=64, ge=1)
    """Latent dimensions."""
    learning_rate: float = Field(default=0.05, gt=0)
    """SGD step."""
    regularization: float = Field(default=0.01, ge=0)
    """L2 penalty."""
    iterations: int = Field(default=100, ge=1)
    """Epochs."""

    @classmethod
    def search_space(cls) -> dict[str, list[Any]]:
        return {
            "factors": [32, 64, 128],
            "learning_rate": [0.01, 0.05, 0.1],
            "regularization": [0.001, 0.01, 0.1],
            "iterations": [100, 300],
        }


class _Factorised(Recommender[_C]):
    _user: NDArray[np.float32]
    _item: NDArray[np.float32]

    def _scores(self, users: NDArray[np.int64]) -> NDArray[np.float32]:
        return self._user[users] @ self._item.T

    def _unit(self) -> NDArray[np.float32]:
        # Cosine in factor space: an item's direction, not its popularity-inflated norm.
        # Computed once per fitted model (item factors never change after fitting).
        unit: NDArray[np.float32] | None = getattr(self, "_unit_cache", None)
        if unit is None or unit.shape != self._item.shape:
            norm = np.maximum(np.linalg.norm(self._item, axis=1, keepdims=True), 1e-9)
            unit = (self._item / norm).astype(np.float32)
            self._unit_cache = unit
        return unit

    def _item_scores(self, items: NDArray[np.int64], w: NDArray[np.float32]) -> NDArray[np.float32]:
        v = self._unit()
        return np.asarray(v @ (w @ v[items]), dtype=np.float32)

    def _item_similarity(self, a: NDArray[np.int64], b: NDArray[np.int64]) -> NDArray[np.float32]:
        v = self._unit()
        return np.asarray(v[a] @ v[b].T, dtype=np.float32)

    def _forget(self, users: NDArray[np.int64]) -> None:
        self._user[users[users < len(self._user)]] = 0.0

    def _params(self) -> dict[str, NDArray[Any]]:
        return {"user_factors": self._user, "item_factors": self._item}

    def _load(self, params: Mapping[str, NDArray[Any]]) -> None:
        self._user = np.asarray(params["user_factors"], np.float32)
        self._item = np.asarray(params["item_factors"], np.float32)


class ALS(_Factorised[ALSConfig]):
    """ALS; ``update`` recomputes the factors of changed or new users against fixed item factors
    (``implicit``'s ``partial_fit_users``), the fold-in used by incremental training."""

    name = "als"
    config_class = ALSConfig
    peer = True
    supports_update = True

    def _model(self, options: FitOptions) -> AlternatingLeastSquares:
        c = self.config
        return AlternatingLeastSquares(
            factors=c.factors,
            regularization=c.regularization,
            alpha=c.alpha,
            iterations=c.iterations,
            random_state=options.seed,
            num_threads=options.n_threads,
        )

    def _fit(self, data: TrainingData, options: FitOptions) -> None:
        # implicit warns (and slows down) when BLAS runs its own threads inside its threads.
        with threadpool_limits(1, "blas"):
            model = self._model(options)
            model.fit(data.weighted(self.config.weighting), show_progress=False)
        self._user = np.asarray(model.user_factors, np.float32)
        self._item = np.asarray(model.item_factors, np.float32)
        self._options = options

    def update(self, data: TrainingData, users: NDArray[np.integer[Any]]) -> None:
        """Fold in the given users' current histories (new users are appended)."""
        users = np.asarray(users, dtype=np.int32)
        rows = data.weighted(self.config.weighting)[users]
        with threadpool_limits(1, "blas"):
            model = self._model(getattr(self, "_options", FitOptions()))
            model.user_factors, model.item_factors = self._user.copy(), self._item
            model.partial_fit_users(users, rows)
        self._user = np.asarray(model.user_factors, np.float32)
        self.n_users = max(self.n_users, len(self._user))
        self._popular = np.bincount(data.item, minlength=self.n_items).astype(np.float32)


class BPR(_Factorised[BPRConfig]):
    """BPR (single-threaded, so that a seed gives the same model every time)."""

    name = "bpr"
    config_class = BPRConfig
    peer = True

    def _fit(self, data: TrainingData, options: FitOptions) -> None:
        c = self.config
        model = BayesianPersonalizedRanking(
            factors=c.factors,
            learning_rate=c.learning_rate,
            regularization=c.regularization,
            iterations=c.iterations,
            random_state=options.seed,
            num_threads=1,
        )
        model.fit(data.matrix(binary=True), show_progress=False)
        self._user = np.asarray(model.user_factors, np.float32)
        self._item = np.asarray(model.item_factors, np.float32)
