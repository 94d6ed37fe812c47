"""The serving side: production models picked up from the registry and hot-swapped, and the
personalization engine built on them (blending, filters, cold start, exploration,
explanations, cache, impressions), each part in a module of its own with typed results."""

from __future__ import annotations

from tastebud.registry.predictor import TARGETS
from tastebud.serving.bundle import MODEL_NAME, RecommenderBundle, load_recommender
from tastebud.serving.catalog import CatalogSnapshot, CatalogView
from tastebud.serving.coldstart import ColdStartLists
from tastebud.serving.engine import PersonalizationEngine
from tastebud.serving.hotswap import ModelServer, Served
from tastebud.serving.impressions import ImpressionLog
from tastebud.serving.predictions import PredictionService
from tastebud.serving.rank import ContentItem, rank_content, similar_items
from tastebud.serving.types import (
    Context,
    Exposure,
    ListRequest,
    Mode,
    ModelRef,
    RankedItem,
    Ranking,
    Reason,
    ReasonType,
    Recommendation,
    RecommendationList,
    RecommendedItem,
    SimilarItems,
)

__all__ = [
    "CatalogSnapshot",
    "CatalogView",
    "ColdStartLists",
    "ContentItem",
    "Context",
    "Exposure",
    "ImpressionLog",
    "ListRequest",
    "MODEL_NAME",
    "Mode",
    "ModelRef",
    "ModelServer",
    "PersonalizationEngine",
    "PredictionService",
    "RankedItem",
    "Ranking",
    "Reason",
    "ReasonType",
    "Recommendation",
    "RecommendationList",
    "RecommendedItem",
    "RecommenderBundle",
    "Served",
    "SimilarItems",
    "TARGETS",
    "load_recommender",
    "rank_content",
    "similar_items",
]
