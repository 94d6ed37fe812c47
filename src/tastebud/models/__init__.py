"""Recommender algorithms behind one protocol (pure: arrays in, arrays out, no I/O).

Peers keep the names users know (``popularity``, ``itemknn``, ``rp3beta``, ``als``, ``bpr``,
``ease``);
Tastebud's own models are named ``tastebud_*``. ``MODELS`` maps every name to its class.
"""

from __future__ import annotations

from tastebud.models._base import (
    FitOptions,
    ModelConfig,
    NotFitted,
    Recommender,
    TrainingData,
    zero_rows,
)
from tastebud.models.factor import ALS, BPR, ALSConfig, BPRConfig
from tastebud.models.hybrid import Hybrid, HybridConfig
from tastebud.models.knn import ItemKNN, ItemKNNConfig, RP3Beta, RP3BetaConfig
from tastebud.models.linear import EASE, EASEConfig, SeqLinear, SeqLinearConfig
from tastebud.models.popularity import Popularity, PopularityConfig
from tastebud.models.ranking import Recommendations, standardise, top_k

__all__ = [
    "ALS",
    "ALSConfig",
    "BPR",
    "BPRConfig",
    "EASE",
    "EASEConfig",
    "FitOptions",
    "Hybrid",
    "HybridConfig",
    "ItemKNN",
    "ItemKNNConfig",
    "MODELS",
    "ModelConfig",
    "NotFitted",
    "Popularity",
    "PopularityConfig",
    "RP3Beta",
    "RP3BetaConfig",
    "Recommendations",
    "Recommender",
    "SeqLinear",
    "SeqLinearConfig",
    "TrainingData",
    "model_class",
    "standardise",
    "top_k",
    "zero_rows",
]

MODELS: dict[str, type[Recommender]] = {  # type: ignore[type-arg]
    cls.name: cls for cls in (SeqLinear, Hybrid, Popularity, ItemKNN, RP3Beta, ALS, BPR, EASE)
}
"""Every registered recommender by name (Tastebud's own first, then the peers)."""


def model_class(name: str) -> type[Recommender]:  # type: ignore[type-arg]
    """The recommender class registered under ``name``.

    Raises:
        KeyError: no such model (the message lists the known names).
    """
    try:
        return MODELS[name]
    except KeyError:
        raise KeyError(f"unknown model {name!r}; known: {', '.join(MODELS)}") from None
