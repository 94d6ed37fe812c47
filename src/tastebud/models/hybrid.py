"""``tastebud_hybrid``: the sequence-aware linear model blended with ALS, item-kNN and RP3beta.

Each component's scores are standardised per user (mean 0, standard deviation 1 over the
catalogue) and summed with weights; a weight of 0 switches a component off (it is not even
fitted), so the blend can become any one of its parts: ``tastebud_seq`` where order carries a
lot, ALS or item-kNN where it carries nothing. Tuning (``tastebud.evaluation.tune``) tunes each
part on its own first, exactly as when it runs alone, then the blend weights on the parts'
validation scores, starting from the best part alone: the blend never scores below its best
part on validation.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray
from pydantic import Field, model_validator

from tastebud.models._base import (
    FitOptions,
    ModelConfig,
    Recommender,
    TrainingData,
)
from tastebud.models.factor import ALS, ALSConfig
from tastebud.models.knn import ItemKNN, ItemKNNConfig, RP3Beta, RP3BetaConfig
from tastebud.models.linear import SeqLinear, SeqLinearConfig
from tastebud.models.ranking import standardise

__all__ = ["Hybrid", "HybridConfig"]

_LEGACY = {
    "l2": ("seq", "l2"),
    "history_half_life": ("seq", "history_half_life"),
    "alpha": ("seq", "alpha"),
    "als_factors": ("als", "factors"),
    "als_regularization": ("als", "regularization"),
    "als_alpha": ("als", "alpha"),
    "knn_neighbors": ("knn", "neighbors"),
}
"""Flat settings of configs saved before the parts were nested: (part, field)."""


class HybridConfig(ModelConfig):
    """``tastebud_hybrid`` settings: a weight and a full config per part.

    >>> d = TrainingData.from_arrays(2, 4, [0, 0, 0, 1, 1], [0, 1, 2, 0, 1], ts=[1, 2, 3, 1, 2])
    >>> config = HybridConfig(seq=SeqLinearConfig(l2=1.0), als=ALSConfig(factors=2), w_knn=0.0)
    >>> Hybrid(config).fit(d).recommend([1], 1, exclude=d.matrix()).item_idx.tolist()
    [[2]]
    """

    PARTS: ClassVar[Mapping[str, type[Recommender[Any]]]] = {
        "seq": SeqLinear,
        "als": ALS,
        "knn": ItemKNN,
        "rp3": RP3Beta,
    }
    """The components by key (each has a ``w_<key>`` weight and a ``<key>`` config)."""
    WEIGHTS: ClassVar[tuple[float, ...]] = (0.0, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0)
    """The values each weight may take when the blend is tuned."""

    w_seq: float = Field(default=1.0, ge=0)
    """Weight of the ``tastebud_seq`` scores (0: off)."""
    w_als: float = Field(default=0.1, ge=0)
    """Weight of the ALS scores (0: off)."""
    w_knn: float = Field(default=0.1, ge=0)
    """Weight of the item-kNN scores (0: off)."""
    w_rp3: float = Field(default=0.0, ge=0)
    """Weight of the RP3beta scores (0: off; configs saved before it existed have none)."""
    seq: SeqLinearConfig = Field(default_factory=SeqLinearConfig)
    """The sequence model's settings."""
    als: ALSConfig = Field(
        default_factory=lambda: ALSConfig(factors=128, regularization=1.0, alpha=5.0)
    )
    """ALS's settings."""
    knn: ItemKNNConfig = Field(default_factory=lambda: ItemKNNConfig(neighbors=200))
    """Item-kNN's settings."""
    rp3: RP3BetaConfig = Field(default_factory=RP3BetaConfig)
    """RP3beta's settings."""

    @model_validator(mode="before")
    @classmethod
    def _nest_flat_settings(cls, data: Any) -> Any:
        # Configs saved before the parts were nested name the parts' settings flat.
        if not isinstance(data, dict) or not any(k in data for k in _LEGACY):
            return data
        data = dict(data)
        defaults = {"als": {"factors": 128, "regularization": 1.0, "alpha": 5.0}}
        nested: dict[str, dict[str, Any]] = {
            "seq": {},
            "als": dict(defaults["als"]),
            "knn": {"neighbors": 200},
        }
        for flat, (part, name) in _LEGACY.items():
            if flat in data:
                nested[part][name] = data.pop(flat)
        for part, values in nested.items():
            data.setdefault(part, values)
        return data

    @model_validator(mode="after")
    def _some_weight(self) -> HybridConfig:
        if not any(self.weight(key) > 0 for key in self.PARTS):
            raise ValueError("at least one of w_seq, w_als, w_knn, w_rp3 must be above 0")
        return self

    def weight(self, key: str) -> float:
        """The weight of part ``key``."""
        return float(getattr(self, f"w_{key}"))

    def part(self, key: str) -> ModelConfig:
        """The config of part ``key``."""
        config: ModelConfig = getattr(self, key)
        return config

    @classmethod
    def blend(cls, parts: Mapping[str, ModelConfig], weights: Mapping[str, float]) -> HybridConfig:
        """A config from the parts' configs and weights (by part key; missing: defaults)."""
        values: dict[str, Any] = {f"w_{k}": float(w) for k, w in weights.items()}
        values.update(parts)
        return cls(**values)


class Hybrid(Recommender[HybridConfig]):
    """Weighted blend of standardised ``tastebud_seq``, ALS, item-kNN and RP3beta scores."""

    name = "tastebud_hybrid"
    config_class = HybridConfig
    supports_update = True

    def _components(self) -> list[tuple[str, float, Recommender[Any]]]:
        c = self.config
        return [
            (key, c.weight(key), cls(c.part(key)))
            for key, cls in c.PARTS.items()
            if c.weight(key) > 0
        ]

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
        if len(self._parts) == 1:  # exactly the part: its own scores, not standardised
            return self._parts[0][2]._scores(users)
        total = np.zeros((len(users), self.n_items), np.float32)
        for _, weight, model in self._parts:
            total += weight * standardise(model._scores(users))
        return total

    def _item_scores(self, items: NDArray[np.int64], w: NDArray[np.float32]) -> NDArray[np.float32]:
        if len(self._parts) == 1:
            return self._parts[0][2]._item_scores(items, w)
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
        for prefix, weight, model in self._components():
            own = {k.split(".", 1)[1]: v for k, v in params.items() if k.startswith(prefix + ".")}
            part = type(model).from_params(self.config.part(prefix), own)
            self._parts.append((prefix, weight, part))
