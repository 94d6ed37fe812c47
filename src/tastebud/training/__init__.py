"""Training jobs: recommenders and behaviour predictors, their labels, feature tables and
pickle-free artifacts (the registry issue adds versions and promotion)."""

from __future__ import annotations

from tastebud.features.flat import flat_features
from tastebud.registry.predictor import TARGETS, PredictorArtifact, load_predictor, save_predictor
from tastebud.registry.recommender import LoadedModel, load_model, save_model
from tastebud.training.labels import (
    KEY_COLUMNS,
    LabelWindows,
    Target,
    default_as_of_times,
    event_labels,
    event_training_set,
)
from tastebud.training.predictors import (
    PEERS,
    evaluate_predictors,
)
from tastebud.training.tabular import (
    FeatureTable,
    TableReport,
    read_table,
    table_from_frame,
)
from tastebud.training.train import TrainResult, train_recommender

__all__ = [
    "FeatureTable",
    "KEY_COLUMNS",
    "LabelWindows",
    "LoadedModel",
    "PEERS",
    "PredictorArtifact",
    "TARGETS",
    "TableReport",
    "Target",
    "TrainResult",
    "default_as_of_times",
    "evaluate_predictors",
    "event_labels",
    "event_training_set",
    "flat_features",
    "load_model",
    "load_predictor",
    "read_table",
    "save_model",
    "save_predictor",
    "table_from_frame",
    "train_recommender",
]
