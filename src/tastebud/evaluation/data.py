"""Evaluation datasets from the configured store: cleaned events -> (user, item) pairs, plus
user attributes for fairness slices."""

from __future__ import annotations

import orjson
import polars as pl
from sqlalchemy import text

from tastebud.evaluation.runner import Dataset
from tastebud.pipeline.clean import PipelineConfig, clean_events
from tastebud.pipeline.interactions import InteractionConfig, build_interactions
from tastebud.pipeline.load import load_events
from tastebud.store import Store

__all__ = ["load_dataset", "user_attributes"]


def user_attributes(store: Store) -> pl.DataFrame:
    """Stored user attributes with scalar values, one string column each (encrypted or nested
    values are left out: slices never decrypt)."""
    with store.engine.connect() as conn:
        rows = conn.execute(text("SELECT user_key, CAST(attributes AS TEXT) FROM users")).fetchall()
    records: list[dict[str, str]] = []
    for key, raw in rows:
        attrs = orjson.loads(raw) if raw else {}
        rec = {"user_key": key}
        for name, value in attrs.items():
            if isinstance(value, str | int | float | bool) and name != "user_key":
                rec[name] = str(value)
        records.append(rec)
    if not records:
        return pl.DataFrame(schema={"user_key": pl.String})
    return pl.DataFrame(records, infer_schema_length=None).select(pl.all().cast(pl.String))


def load_dataset(
    store: Store,
    *,
    until_ms: int | None = None,
    pipeline: PipelineConfig | None = None,
    interactions: InteractionConfig | None = None,
) -> Dataset:
    """Events before ``until_ms`` (all by default), cleaned (bots excluded), aggregated into one
    row per (user, item) at the time of the user's first interaction with the item."""
    events = clean_events(load_events(store, until_ms=until_ms), pipeline).training_events()
    if events.height == 0:
        empty = pl.DataFrame(
            schema={
                "user_key": pl.String,
                "item_id": pl.String,
                "ts_ms": pl.Int64,
                "weight": pl.Float64,
            }
        )
        return Dataset(empty, None)
    pairs = build_interactions(events, interactions).pairs.select(
        "user_key", "item_id", pl.col("first_ms").alias("ts_ms"), "weight"
    )
    users = user_attributes(store)
    users = users.join(pairs.select("user_key").unique(), on="user_key", how="semi")
    return Dataset(pairs, users if users.width > 1 else None)
