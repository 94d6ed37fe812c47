"""The serving side: production models picked up from the registry and hot-swapped, and the
personalization engine built on them (blending, filters, cold start, exploration,
explanations, cache, impressions)."""

from __future__ import annotations

from tastebud.serving.catalog import CatalogSnapshot, CatalogView
from tastebud.serving.engine import (
    MODEL_NAME,
    Context,
    PersonalizationEngine,
    RecommenderBundle,
    load_recommender,
)
from tastebud.serving.hotswap import ModelServer, Served
from tastebud.serving.impressions import ImpressionLog
from tastebud.serving.predictions import TARGETS, PredictionService
from tastebud.serving.rank import ContentItem, rank_content, similar_items

__all__ = [
    "PredictionService",
    "TARGETS",
    "CatalogSnapshot",
    "CatalogView",
    "ContentItem",
    "Context",
    "ImpressionLog",
    "MODEL_NAME",
    "ModelServer",
    "PersonalizationEngine",
    "RecommenderBundle",
    "Served",
    "load_recommender",
    "rank_content",
    "similar_items",
]
