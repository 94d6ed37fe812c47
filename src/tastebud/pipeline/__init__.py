"""The data pipeline: load, clean, sessionize, weigh interactions, split by time."""

from __future__ import annotations

from tastebud.pipeline.clean import (
    CleanResult,
    PipelineConfig,
    StageReport,
    StageReportJSON,
    clean_events,
)
from tastebud.pipeline.interactions import (
    InteractionConfig,
    Interactions,
    build_interactions,
    index_keys,
    interaction_weights,
    pair_vocabularies,
    training_data,
)
from tastebud.pipeline.load import EVENT_SCHEMA, count_events, load_events, user_ranges
from tastebud.pipeline.split import temporal_user_split

__all__ = [
    "CleanResult",
    "EVENT_SCHEMA",
    "InteractionConfig",
    "Interactions",
    "PipelineConfig",
    "StageReport",
    "StageReportJSON",
    "build_interactions",
    "clean_events",
    "count_events",
    "index_keys",
    "interaction_weights",
    "load_events",
    "pair_vocabularies",
    "temporal_user_split",
    "training_data",
    "user_ranges",
]
