"""Features: definitions (versioned), computation, offline snapshots, point-in-time joins."""

from __future__ import annotations

from tastebud.features.build import BuildResult, FeatureBuildConfig, build_snapshot, load_items
from tastebud.features.compute import (
    ContextFeatures,
    context_features,
    item_features,
    user_features,
)
from tastebud.features.definitions import FEATURES, FeatureDef, feature
from tastebud.features.offline import (
    FeatureValues,
    Snapshot,
    latest_snapshot,
    list_snapshots,
    snapshot_values,
    training_set,
)
from tastebud.features.online import OnlineFeatures, Profile, publish_snapshot
from tastebud.features.stats import BrokenInvariant, FeatureStats

__all__ = [
    "BrokenInvariant",
    "BuildResult",
    "ContextFeatures",
    "FEATURES",
    "FeatureBuildConfig",
    "FeatureDef",
    "FeatureStats",
    "FeatureValues",
    "OnlineFeatures",
    "Profile",
    "Snapshot",
    "build_snapshot",
    "context_features",
    "feature",
    "item_features",
    "latest_snapshot",
    "list_snapshots",
    "load_items",
    "publish_snapshot",
    "snapshot_values",
    "training_set",
    "user_features",
]
