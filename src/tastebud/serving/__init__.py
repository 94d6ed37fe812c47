"""The serving side: production models picked up from the registry and hot-swapped, and the
recommendations built from them."""

from __future__ import annotations

from tastebud.serving.models import ModelServer, Served
from tastebud.serving.recommend import RecommendationService

__all__ = ["ModelServer", "RecommendationService", "Served"]
