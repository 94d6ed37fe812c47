"""The recommender serving loads from the registry: the model with its cold-start lists."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import orjson

from tastebud.registry.recommender import LoadedModel, load_model
from tastebud.serving.coldstart import ColdStartLists

__all__ = ["MODEL_NAME", "RecommenderBundle", "load_recommender"]

MODEL_NAME = "recommendations"
"""The registry name of the model recommendations, similar items and ``rank`` are served by."""


@dataclass(frozen=True)
class RecommenderBundle:
    """A served recommender with its cold-start lists."""

    loaded: LoadedModel
    cold_start: ColdStartLists = field(default_factory=ColdStartLists)


def load_recommender(path: Path) -> RecommenderBundle:
    """The ``ModelServer`` loader of recommender artifacts (verified by the registry)."""
    loaded = load_model(path)
    cold_path = path / "cold_start.json"
    doc = orjson.loads(cold_path.read_bytes()) if cold_path.is_file() else {}
    return RecommenderBundle(loaded, ColdStartLists.from_json(doc))
