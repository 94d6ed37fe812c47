"""The offline feature store: snapshots in the database, point-in-time reads and joins."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import cast

import orjson
import polars as pl
from pydantic import JsonValue
from sqlalchemy import insert, select
from typing_extensions import TypedDict

from tastebud.features.stats import FeatureStats
from tastebud.pipeline import StageReportJSON
from tastebud.store import Store
from tastebud.store.tables import feature_snapshots, feature_values

__all__ = [
    "FeatureValues",
    "Snapshot",
    "SnapshotInfo",
    "SnapshotMeta",
    "latest_snapshot",
    "list_snapshots",
    "newest_snapshot",
    "save_snapshot",
    "snapshot_values",
    "training_set",
]

FeatureValues = dict[str, JsonValue]
"""One entity's feature values by feature name, as stored (``feature_values.vals``): a JSON
document whose keys are the features of its entity type that the build computed."""


class _SnapshotCounts(TypedDict):
    as_of_ms: int
    """Only events before this time were used."""
    created_ms: int
    window_start_ms: int | None
    """The first event used (``None``: no event)."""
    window_end_ms: int | None
    """The last event used."""
    n_events: int
    n_users: int
    n_items: int
    feature_versions: dict[str, int]
    """The version of every feature that is not deprecated."""


class SnapshotMeta(_SnapshotCounts):
    """What a build stores about a snapshot (a ``feature_snapshots`` row, without its id)."""

    stats: dict[str, FeatureStats]
    """Statistics of every feature, by name."""
    reports: list[StageReportJSON]
    """What each cleaning stage did."""


class SnapshotInfo(_SnapshotCounts):
    """A stored snapshot without its statistics and reports (:func:`list_snapshots`)."""

    id: int


class Snapshot(SnapshotInfo):
    """A stored snapshot: its id, metadata, statistics and reports."""

    stats: dict[str, FeatureStats]
    reports: list[StageReportJSON]


def save_snapshot(
    store: Store,
    meta: SnapshotMeta,
    entities: Mapping[str, Sequence[tuple[str, Mapping[str, JsonValue]]]],
) -> int:
    """Store a snapshot's metadata and values in one transaction; returns its id."""
    with store.engine.begin() as conn:
        snapshot_id = int(
            conn.execute(
                insert(feature_snapshots).values(**meta).returning(feature_snapshots.c.id)
            ).scalar_one()
        )
        for entity, rows in entities.items():
            batch = [
                {"snapshot_id": snapshot_id, "entity": entity, "entity_key": key, "vals": vals}
                for key, vals in rows
            ]
            for start in range(0, len(batch), 5000):
                conn.execute(insert(feature_values), batch[start : start + 5000])
    return snapshot_id


def list_snapshots(store: Store) -> list[SnapshotInfo]:
    """Every snapshot's metadata, oldest first (without stats and reports)."""
    cols = [c for c in feature_snapshots.c if c.name not in ("stats", "reports")]
    with store.engine.connect() as conn:
        rows = conn.execute(select(*cols).order_by(feature_snapshots.c.as_of_ms))
        # The columns are those of SnapshotInfo (the JSON column decoded by its type).
        return [cast(SnapshotInfo, dict(r._mapping)) for r in rows]


def latest_snapshot(store: Store, *, at_ms: int | None = None) -> Snapshot | None:
    """The newest snapshot (valid at ``at_ms``: built as of at or before it), with stats."""
    q = select(feature_snapshots).order_by(
        feature_snapshots.c.as_of_ms.desc(), feature_snapshots.c.id.desc()
    )
    if at_ms is not None:
        q = q.where(feature_snapshots.c.as_of_ms <= at_ms)
    with store.engine.connect() as conn:
        row = conn.execute(q.limit(1)).first()
        return None if row is None else cast(Snapshot, dict(row._mapping))


def newest_snapshot(store: Store) -> Snapshot | None:
    """The snapshot built last (highest id, whatever its as-of time), with stats and reports:
    what the latest build saw, for model cards and the feature review."""
    q = select(feature_snapshots).order_by(feature_snapshots.c.id.desc()).limit(1)
    with store.engine.connect() as conn:
        row = conn.execute(q).first()
        return None if row is None else cast(Snapshot, dict(row._mapping))


def snapshot_values(store: Store, snapshot_id: int, entity: str) -> dict[str, FeatureValues]:
    """All values of one entity type in a snapshot: key -> feature values."""
    q = select(feature_values.c.entity_key, feature_values.c.vals).where(
        feature_values.c.snapshot_id == snapshot_id, feature_values.c.entity == entity
    )
    with store.engine.connect() as conn:
        return {k: (orjson.loads(v) if isinstance(v, str) else v) for k, v in conn.execute(q)}


def training_set(store: Store, labels: pl.DataFrame) -> pl.DataFrame:
    """Join each label with the user's features from the snapshot valid at the label's time.

    Args:
        labels: Columns ``user_key``, ``as_of_ms`` (the label's time) and any label columns.

    Returns:
        ``labels`` plus ``snapshot_id`` and one column per user feature (null where the user
        had no features in that snapshot, or no snapshot was valid yet). Point-in-time correct:
        a snapshot built as of a later time is never used.
    """
    snaps = pl.DataFrame(
        [(s["id"], s["as_of_ms"]) for s in list_snapshots(store)],
        schema={"snapshot_id": pl.Int64, "snapshot_as_of_ms": pl.Int64},
        orient="row",
    ).sort("snapshot_as_of_ms")
    joined = (
        labels.with_row_index("_row")
        .sort("as_of_ms")
        .join_asof(snaps, left_on="as_of_ms", right_on="snapshot_as_of_ms", strategy="backward")
        .sort("_row")
        .drop("_row")
    )
    values: list[FeatureValues] = []
    cache: dict[int, dict[str, FeatureValues]] = {}
    for user_key, snapshot_id in joined.select("user_key", "snapshot_id").iter_rows():
        if snapshot_id is None:
            values.append({})
            continue
        if snapshot_id not in cache:
            cache[snapshot_id] = snapshot_values(store, snapshot_id, "user")
        values.append(cache[snapshot_id].get(user_key, {}))
    features = pl.DataFrame(values, infer_schema_length=None) if any(values) else None
    if features is None:
        return joined
    return pl.concat([joined, features], how="horizontal")
