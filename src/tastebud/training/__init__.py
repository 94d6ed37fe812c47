"""Training jobs: fit -> evaluate -> save (the registry issue adds versions and promotion)."""

from __future__ import annotations

from tastebud.training.artifacts import LoadedModel, load_model, save_model
from tastebud.training.train import TrainResult, train_recommender

__all__ = [
    "LoadedModel",
    "TrainResult",
    "load_model",
    "save_model",
    "train_recommender",
]
