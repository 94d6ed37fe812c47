"""``tastebud_hybrid``: the sequence-aware linear model blended with ALS and item-kNN.

Each component's scores are standardised per user (mean 0, standard deviation 1 over the
catalogue) and summed with weights tuned on validation; a weight of 0 switches a component off,
so on data where order carries nothing (no timestamps) the blend can lean on factorisation
instead, and where it carries a lot it stays close to ``tastebud_seq``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from numpy.typing import NDArray
from pydantic import Field

from tastebud.models._base import (
    FitOptions,
    ModelConfig,
    Recommender,
    TrainingData,
    standardise,
)
from tastebud.models.factor import ALS, ALSConfig
from tastebud.models.knn import ItemKNN, ItemKNNConfig
from tastebud.models.linear import SeqLinear, SeqLinearConfig

__all__ = ["Hybrid", "HybridConfig"]


class HybridConfig(ModelConfig):
    """``tastebud_hybrid`` settings (the components' main parameters, flattened for tuning).

    >>> d = TrainingData.from_arrays(2, 4, [0, 0, 0, 1, 1], [0, 1, 2, 0, 1], ts=[1, 2, 3, 1, 2])
    >>> m = Hybrid(HybridConfig(l2=1.0, als_factors=2, w_knn=0.0)).fit(d)
    >>> m.recommend([1], 1, exclude=d.matrix()).item_idx.tolist()
    [[2]]
    """

    l2: float = Field(default=1000.0, gt=0)
    """Ridge penalty of the sequence model."""
    history_half_life: float | None = Field(default=6.0, gt=0)
    """Recency weighting of the user's history in the sequence model (steps back)."""
    alpha: float = Field(default=1.0, ge=0)
    """Weight of the sequence model's "comes next" part."""
    w_als: float = Field(default=0.1, ge=0)
    """Weight of the ALS scores (0: off)."""
    als_factors: int = Field(default=128, ge=1)
    """ALS latent dimensions."""
    als_regularization: float = Field(default=1.0, ge=0)
    """ALS L2 penalty."""
    als_alpha: float = Field(default=5.0, gt=0)
    """ALS confidence scaling."""
    w_knn: float = Field(default=0.1, ge=0)
    """Weight of the item-kNN scores (0: off)."""
    knn_neighbors: int = Field(default=200, ge=1)
    """Item-kNN neighbours per item."""

    @classmethod
    def search_space(cls) -> dict[str, list[Any]]:
        return {
            "w_als": [0.0, 0.1, 0.2, 0.4, 1.0],
            "w_knn": [0.0, 0.1, 0.2, 0.4],
            "l2": [300.0, 1000.0, 3000.0],
            "history_half_life": [3.0, 6.0, 12.0, None],
            "alpha": [0.0, 0.3, 1.0],
            "als_factors": [64, 128],
            "als_regularization": [0.1, 1.0, 10.0],
        }

    def parts(self) -> tuple[SeqLinearConfig, ALSConfig, ItemKNNConfig]:
        """The components' configs."""
        return (
            SeqLinearConfig(l2=self.l2, history_half_life=self.history_half_life, alpha=self.alpha),
            ALSConfig(
                factors=self.als_factors,
                regularization=self.als_regularization,
                alpha=self.als_alpha,
            ),
            ItemKNNConfig(neighbors=self.knn_neighbors),
        )


class Hybrid(Recommender[HybridConfig]):
    """Weighted blend of standardised ``tastebud_seq``, ALS and item-kNN scores."""

    name = "tastebud_hybrid"
    config_class = HybridConfig
    supports_update = True

    def _components(self) -> list[tuple[str, float, Recommender[Any]]]:
        seq, als, knn = self.config.parts()
        out: list[tuple[str, float, Recommender[Any]]] = [("seq", 1.0, SeqLinear(seq))]
        if self.config.w_als > 0:
            out.append(("als", self.config.w_als, ALS(als)))
        if self.config.w_knn > 0:
            out.append(("knn", self.config.w_knn, ItemKNN(knn)))
        return out

    def _fit(self, data: TrainingData, options: FitOptions) -> None:
        self._parts = self._components()
        for _, _, model in self._parts:
            model.fit(data, options)

    def update(self, data: TrainingData, users: NDArray[np.integer[Any]]) -> None:
        """Every component folds in the new interactions."""
        for _, _, model in self._parts:
            model.update(data, users)
        self.n_users = max(m.n_users for _, _, m in self._parts)
        self._popular = np.bincount(data.item, minlength=self.n_items).astype(np.float32)

    def _scores(self, users: NDArray[np.int64]) -> NDArray[np.float32]:
        total = np.zeros((len(users), self.n_items), np.float32)
        for _, weight, model in self._parts:
            total += weight * standardise(model._scores(users))
        return total

    def _item_scores(self, items: NDArray[np.int64], w: NDArray[np.float32]) -> NDArray[np.float32]:
        total = np.zeros(self.n_items, np.float32)
        for _, weight, model in self._parts:
            total += weight * standardise(model._item_scores(items, w)[None, :])[0]
        return total

    def _item_similarity(self, a: NDArray[np.int64], b: NDArray[np.int64]) -> NDArray[np.float32]:
        # Each part's relations scaled by its spread over the catalogue would need the full
        # vectors; the raw weighted sum keeps what explanations use: which anchor relates most.
        total = np.zeros((len(a), len(b)), np.float32)
        for _, weight, model in self._parts:
            part = model._item_similarity(a, b)
            scale = float(np.abs(part).max()) or 1.0
            total += weight * part / scale
        return total

    def _forget(self, users: NDArray[np.int64]) -> None:
        for _, _, model in self._parts:
            model.forget_users(users)

    def _params(self) -> dict[str, NDArray[Any]]:
        out: dict[str, NDArray[Any]] = {}
        for prefix, _, model in self._parts:
            out.update({f"{prefix}.{k}": v for k, v in model.get_params().items()})
        return out

    def _load(self, params: Mapping[str, NDArray[Any]]) -> None:
        self._parts = []
        configs = dict(zip(("seq", "als", "knn"), self.config.parts(), strict=True))
        for prefix, weight, model in self._components():
            own = {k.split(".", 1)[1]: v for k, v in params.items() if k.startswith(prefix + ".")}
            self._parts.append((prefix, weight, type(model).from_params(configs[prefix], own)))
