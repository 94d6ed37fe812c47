"""Cold-start lists shipped with every recommender (``cold_start.json``): the best items for a
user the model does not know, by segment and context (device, locale, time of day), and what is
trending per category. Computed from the recent events at training time, so serving reads a
file instead of scanning events."""

from __future__ import annotations

import time
from typing import NotRequired, TypedDict

import polars as pl
from sqlalchemy import text

from tastebud.features import latest_snapshot, snapshot_values
from tastebud.features.daypart import daypart
from tastebud.pipeline.load import load_events
from tastebud.realtime.base import CONSUMING
from tastebud.store import Store

__all__ = [
    "ColdStartJSON",
    "MIN_EVENTS",
    "cold_start_lists",
]

ColdStartJSON = TypedDict(
    "ColdStartJSON",
    {
        "global": list[str],
        "device": dict[str, list[str]],
        "daypart": dict[str, list[str]],
        "segment": dict[str, list[str]],
        "locale": dict[str, list[str]],
        "trending": dict[str, list[str]],
        "window_days": NotRequired[float],
    },
)
"""A recommender's ``cold_start.json``: popular item ids overall and per device type, time of
day, user segment and locale, the trending ones per category, and the window's days (absent
when the window held no events)."""

MIN_EVENTS = 20
"""A segment or context needs this many events of its own to get its own list."""


def _top(frame: pl.DataFrame, top: int) -> list[str]:
    return (
        frame.group_by("item_id")
        .len()
        .sort(["len", "item_id"], descending=[True, False])
        .head(top)
        .get_column("item_id")
        .to_list()
    )


def _by(frame: pl.DataFrame, column: str, top: int) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for (value,), part in frame.group_by(column):
        if value not in (None, "") and part.height >= MIN_EVENTS:
            out[str(value)] = _top(part, top)
    return out


def cold_start_lists(
    store: Store,
    known_items: set[str],
    categories: dict[str, str | None],
    *,
    days: float = 30,
    trending_days: float = 7,
    top: int = 200,
    now_ms: int | None = None,
) -> ColdStartJSON:
    """Popular items among the events of the last ``days`` (consuming events only, items the
    model knows): overall, per device type, per time of day, per user locale (attribute) and
    per user segment (the newest feature snapshot's ``segment``), and per category over the
    last ``trending_days``. The window ends at ``now_ms``, by default the newest stored
    event."""
    if now_ms is None:
        # The window ends at the newest event, not the wall clock: imported history is as
        # good a source of popular items as live traffic.
        with store.engine.connect() as conn:
            newest = conn.execute(text("SELECT max(ts_ms) FROM events")).scalar()
        now = int(time.time() * 1000) if newest is None else int(newest) + 1
    else:
        now = now_ms
    events = load_events(store, since_ms=now - int(days * 86_400_000), slim=True)
    if "device_type" not in events.columns:  # an empty window comes back without it
        events = events.with_columns(pl.lit(None, dtype=pl.String).alias("device_type"))
    frame = events.filter(
        pl.col("event_type").is_in(list(CONSUMING))
        & pl.col("item_id").is_in(pl.Series(sorted(known_items), dtype=pl.String).implode())
    ).select("user_key", "item_id", "ts_ms", "device_type")
    if frame.is_empty():
        return {
            "global": [],
            "device": {},
            "daypart": {},
            "segment": {},
            "locale": {},
            "trending": {},
        }
    frame = frame.with_columns(
        pl.from_epoch("ts_ms", time_unit="ms").dt.hour().alias("hour"),
        pl.col("item_id")
        .replace_strict(categories, default=None, return_dtype=pl.String)
        .alias("category"),
    )
    frame = frame.with_columns(
        pl.col("hour").map_elements(daypart, return_dtype=pl.String).alias("daypart")
    )
    snap = latest_snapshot(store)
    segments: dict[str, str] = {}
    if snap is not None:
        for key, vals in snapshot_values(store, snap["id"], "user").items():
            if vals.get("segment"):
                segments[key] = str(vals["segment"])
    frame = frame.with_columns(
        pl.col("user_key")
        .replace_strict(segments, default=None, return_dtype=pl.String)
        .alias("segment")
    )
    # The users' locale (a user attribute, e.g. "de-DE"): the cold-start list for a request's
    # ``locale`` context.
    from tastebud.evaluation.data import user_attributes

    attrs = user_attributes(store)
    locales: dict[str, str] = {}
    if "locale" in attrs.columns:
        locales = {k: v for k, v in attrs.select("user_key", "locale").iter_rows() if v}
    frame = frame.with_columns(
        pl.col("user_key")
        .replace_strict(locales, default=None, return_dtype=pl.String)
        .alias("locale")
    )
    recent = frame.filter(pl.col("ts_ms") >= now - int(trending_days * 86_400_000))
    return {
        "global": _top(frame, top),
        "device": _by(frame, "device_type", top),
        "daypart": _by(frame, "daypart", top),
        "segment": _by(frame, "segment", top),
        "locale": _by(frame, "locale", top),
        "trending": _by(recent, "category", 50),
        "window_days": days,
    }
