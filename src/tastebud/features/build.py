"""Materializing feature snapshots: ``tastebud features build [--as-of T]``.

Point-in-time: a snapshot as of T reads only events with ``ts_ms < T``. Memory-bounded: above
``memory_budget_events`` the users are processed in 16 (or 256) ranges of pseudonyms, each
loaded, cleaned and reduced to features on its own; item features need only a light 30-day
projection of each range.

Data problems found on the way (events the cleaning drops as invalid, events on items missing
from the catalogue, clicks beyond the impressions shown, an empty window, suspicious feature
statistics) do not stop a build: each is issued once, with its count over the whole build, as a
:class:`~tastebud.errors.DataWarning`, logged, and listed in ``BuildResult.warnings``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import orjson
import polars as pl
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import text

from tastebud.features.compute import (
    assign_segments,
    context_features,
    item_features,
    user_features,
)
from tastebud.features.definitions import FEATURES
from tastebud.features.offline import FeatureValues, SnapshotMeta, latest_snapshot, save_snapshot
from tastebud.features.stats import (
    BrokenInvariant,
    DataProblems,
    FeatureStats,
    check,
    feature_stats,
)
from tastebud.monitoring import get_logger
from tastebud.pipeline import (
    InteractionConfig,
    PipelineConfig,
    StageReport,
    clean_events,
    count_events,
    load_events,
    user_ranges,
)
from tastebud.store import Store

__all__ = ["BuildResult", "FeatureBuildConfig", "build_snapshot", "load_items"]

_log = get_logger(__name__)
_DAY_MS = 86_400_000
_ROUTINE_STAGES = frozenset({"dedupe"})
"""Cleaning stages whose dropped rows are routine (a double-fired event), not data problems:
the rows every other stage drops (invalid, incomplete, impossible) are warned about."""


class FeatureBuildConfig(BaseModel):
    """How snapshots are built."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    memory_budget_events: int = Field(default=2_000_000, ge=1)
    """Above this many events, users are processed in ranges (16 or 256) to bound memory."""
    pipeline: PipelineConfig = Field(default_factory=PipelineConfig)
    """Cleaning rules."""
    interactions: InteractionConfig = Field(default_factory=InteractionConfig)
    """Interaction weights of ``content_category_interests``."""
    segment_min_users: int = Field(default=20, ge=1)
    """k: the smallest segment size (smaller ones are merged into coarser ones)."""


@dataclass
class BuildResult:
    """What a build produced."""

    snapshot_id: int
    as_of_ms: int
    n_events: int
    n_users: int
    n_items: int
    partitions: int
    seconds: float
    warnings: list[str] = field(default_factory=list)
    """Data problems and suspicious statistics, one line each (also issued as
    :class:`~tastebud.errors.DataWarning`)."""
    reports: list[StageReport] = field(default_factory=list)


def load_items(store: Store) -> pl.DataFrame:
    """The catalogue as a frame: ``item_id``, ``category``, ``categories``, ``created_ms``."""
    with store.engine.connect() as conn:
        rows = conn.execute(
            text("SELECT item_id, category, CAST(categories AS TEXT), created_ms FROM items")
        ).fetchall()
    return pl.DataFrame(
        [(r[0], r[1], orjson.loads(r[2]) if r[2] else [], r[3]) for r in rows],
        schema={
            "item_id": pl.String,
            "category": pl.String,
            "categories": pl.List(pl.String),
            "created_ms": pl.Int64,
        },
        orient="row",
    )


def _rows(frame: pl.DataFrame, key: str) -> list[tuple[str, FeatureValues]]:
    # Floats are stored rounded to 6 decimals: parallel aggregation sums in varying order, and
    # the same data must give the same snapshot, to the last stored digit.
    floats = [c for c, dt in frame.schema.items() if dt.is_float()]
    if floats:
        frame = frame.with_columns(pl.col(floats).round(6))
    out = []
    for row in frame.iter_rows(named=True):
        entity = row.pop(key)
        adoption = row.get("feature_adoption")
        if isinstance(adoption, list):
            row["feature_adoption"] = {a["feature"]: a["len"] for a in adoption}
        out.append((entity, row))
    return out


def build_snapshot(
    store: Store,
    *,
    as_of_ms: int | None = None,
    config: FeatureBuildConfig | None = None,
) -> BuildResult:
    """Build and store a snapshot of every feature as of ``as_of_ms`` (default: now).

    Raises:
        BrokenInvariant: a feature broke a hard rule; nothing is stored.

    Warns:
        DataWarning: once per data problem, with its count (see the module docstring).
    """
    cfg = config or FeatureBuildConfig()
    started = time.perf_counter()
    as_of = as_of_ms if as_of_ms is not None else int(time.time() * 1000)
    n_events = count_events(store, until_ms=as_of)
    budget = cfg.memory_budget_events
    partitions = 1 if n_events <= budget else (16 if n_events <= 16 * budget else 256)
    items = load_items(store)
    user_parts: list[pl.DataFrame] = []
    item_parts: list[pl.DataFrame] = []
    reports: dict[str, StageReport] = {}
    problems = DataProblems()
    first_ms: int | None = None
    last_ms: int | None = None
    for users in user_ranges(partitions):
        raw = load_events(store, until_ms=as_of, users=users, slim=True)
        if raw.is_empty():
            continue
        lo, hi = raw.get_column("ts_ms").min(), raw.get_column("ts_ms").max()
        first_ms = int(lo) if first_ms is None else min(first_ms, int(lo))  # type: ignore[arg-type]
        last_ms = int(hi) if last_ms is None else max(last_ms, int(hi))  # type: ignore[arg-type]
        cleaned = clean_events(raw, cfg.pipeline)
        del raw
        for r in cleaned.reports:
            reports[r.stage] = reports[r.stage].merge(r) if r.stage in reports else r
        user_parts.append(
            user_features(cleaned.events, items, as_of, cfg.interactions, problems=problems)
        )
        # Item features need 30 days of (item, type, time); the payload only of impressions
        # (their item lists). Keeping nothing else bounds memory across partitions.
        item_parts.append(
            cleaned.events.filter(
                (pl.col("ts_ms") >= as_of - 30 * _DAY_MS)
                & (pl.col("item_id").is_not_null() | (pl.col("event_type") == "impression"))
            ).select(
                "item_id",
                pl.col("event_type").cast(pl.Categorical),
                "ts_ms",
                pl.when(pl.col("event_type") == "impression").then(pl.col("data")).alias("data"),
            )
        )
    users_df = (
        assign_segments(pl.concat(user_parts), as_of, min_users=cfg.segment_min_users)
        if user_parts
        else pl.DataFrame()
    )
    items_df = item_features(
        pl.concat(item_parts)
        if item_parts
        else pl.DataFrame(
            schema={
                "item_id": pl.String,
                "event_type": pl.String,
                "ts_ms": pl.Int64,
                "data": pl.String,
            }
        ),
        items,
        as_of,
        problems=problems,
    )
    if not user_parts:
        problems.note("no events before the snapshot time: the snapshot has no user features")
    for report in reports.values():
        if report.stage not in _ROUTINE_STAGES:
            for why, n in report.removed.items():
                problems.add(f"events dropped by cleaning ({report.stage}): {why}", n)
    context = context_features(as_of)
    # Stored like the other entities' values: a JSON document by feature name.
    context_values: FeatureValues = {
        "hour_of_day": context["hour_of_day"],
        "day_of_week": context["day_of_week"],
        "is_weekend": context["is_weekend"],
        "season": context["season"],
    }
    definitions = {f.name: f for f in FEATURES}
    stats: dict[str, FeatureStats] = {}
    for d in FEATURES:
        if d.entity == "user" and d.name in users_df.columns:
            stats[d.name] = feature_stats(users_df, d)
        elif d.entity == "item":
            stats[d.name] = feature_stats(items_df, d)
        elif d.entity == "context":
            stats[d.name] = feature_stats(pl.DataFrame({d.name: [context_values[d.name]]}), d)
    previous = latest_snapshot(store, at_ms=as_of)
    for w in check(stats, definitions, previous["stats"] if previous else None):
        problems.note(w)
    if not users_df.is_empty() and users_df.get_column("user_key").n_unique() != users_df.height:
        raise BrokenInvariant("a user appears twice in the snapshot")
    meta: SnapshotMeta = {
        "as_of_ms": as_of,
        "created_ms": int(time.time() * 1000),
        "window_start_ms": first_ms,
        "window_end_ms": last_ms,
        "n_events": n_events,
        "n_users": users_df.height,
        "n_items": items_df.height,
        "feature_versions": {f.name: f.version for f in FEATURES if not f.deprecated},
        "stats": stats,
        "reports": [r.to_json() for r in reports.values()],
    }
    snapshot_id = save_snapshot(
        store,
        meta,
        {
            "user": _rows(users_df, "user_key") if not users_df.is_empty() else [],
            "item": _rows(items_df, "item_id"),
            "context": [("as_of", context_values)],
        },
    )
    warnings = problems.warn(stacklevel=2)
    result = BuildResult(
        snapshot_id,
        as_of,
        n_events,
        users_df.height,
        items_df.height,
        partitions,
        time.perf_counter() - started,
        warnings,
        list(reports.values()),
    )
    for w in warnings:
        _log.warning("feature data problem", detail=w)
    _log.info(
        "feature snapshot built",
        snapshot=snapshot_id,
        users=result.n_users,
        seconds=round(result.seconds, 2),
    )
    return result
