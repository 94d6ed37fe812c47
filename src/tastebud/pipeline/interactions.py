"""User x item interaction matrices from cleaned events."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field
from scipy.sparse import csr_matrix

from tastebud.ids import Vocabulary
from tastebud.models import TrainingData

__all__ = [
    "InteractionConfig",
    "Interactions",
    "build_interactions",
    "index_keys",
    "interaction_weights",
    "pair_vocabularies",
    "training_data",
]

_DAY_MS = 86_400_000


class InteractionConfig(BaseModel):
    """How much each event says about a user's interest in an item.

    The weight of an event is ``type_weights[type]``, times the rating value for ``rating``,
    times the event's weight for ``interaction``, plus ``engagement_per_minute`` per minute of
    ``content_engagement`` (capped at ``engagement_cap_minutes``); ``feedback`` counts
    ``like_weight`` for a like and nothing otherwise (dislikes are filters, not interest).
    With ``half_life_days`` every weight decays by half per that many days before ``as_of``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    type_weights: dict[str, float] = Field(
        default_factory=lambda: {
            "page_view": 1.0,
            "click": 2.0,
            "content_engagement": 1.0,
            "rating": 1.0,
            "interaction": 1.0,
            "conversion": 5.0,
        }
    )
    """Base weight per event type; types not listed are ignored."""
    engagement_per_minute: float = Field(default=0.5, ge=0)
    """Extra weight per minute of engagement time."""
    engagement_cap_minutes: float = Field(default=10.0, ge=0)
    """Engagement beyond this adds nothing."""
    like_weight: float = Field(default=3.0, ge=0)
    """Weight of a ``like`` feedback."""
    half_life_days: float | None = Field(default=None, gt=0)
    """Time decay of weights (``None``: no decay)."""


@dataclass
class Interactions:
    """A user x item matrix with its vocabularies and the per-pair frame it came from."""

    users: Vocabulary
    items: Vocabulary
    matrix: csr_matrix
    """``float32`` weights, users in rows."""
    pairs: pl.DataFrame
    """One row per (user_key, item_id): ``weight``, ``count``, ``first_ms``, ``last_ms``."""


def interaction_weights(
    events: pl.DataFrame, config: InteractionConfig, as_of_ms: int
) -> pl.DataFrame:
    """Events about items with their interaction weight (events with weight 0 dropped)."""
    cfg = config
    t = pl.col("event_type")
    data = pl.col("data")
    value = data.str.json_path_match("$.value").cast(pl.Float64, strict=False)
    weight = data.str.json_path_match("$.weight").cast(pl.Float64, strict=False)
    spent = data.str.json_path_match("$.time_spent_ms").cast(pl.Float64, strict=False)
    kind = data.str.json_path_match("$.kind")
    base = t.replace_strict(cfg.type_weights, default=0.0, return_dtype=pl.Float64)
    w = (
        pl.when(t == "rating")
        .then(base * value.fill_null(0.0))
        .when(t == "interaction")
        .then(base * weight.fill_null(1.0))
        .when(t == "content_engagement")
        .then(
            base
            + cfg.engagement_per_minute
            * (spent.fill_null(0.0) / 60_000).clip(0, cfg.engagement_cap_minutes)
        )
        .when(t == "feedback")
        .then(pl.when(kind == "like").then(cfg.like_weight).otherwise(0.0))
        .otherwise(base)
    )
    if cfg.half_life_days:
        age_days = (as_of_ms - pl.col("ts_ms")).clip(0) / _DAY_MS
        w = w * (0.5 ** (age_days / cfg.half_life_days))
    return (
        events.filter(pl.col("item_id").is_not_null())
        .with_columns(w.alias("weight"))
        .filter(pl.col("weight") != 0.0)
        .select("user_key", "item_id", "event_type", "ts_ms", "weight")
    )


def build_interactions(
    events: pl.DataFrame,
    config: InteractionConfig | None = None,
    *,
    as_of_ms: int | None = None,
) -> Interactions:
    """Aggregate cleaned events into a user x item matrix (vocabularies sorted, so the same data
    always gives the same indices)."""
    cfg = config or InteractionConfig()
    latest = events.get_column("ts_ms").max()
    as_of = as_of_ms if as_of_ms is not None else (int(latest) if latest is not None else 0) + 1  # type: ignore[arg-type]
    pairs = (
        interaction_weights(events, cfg, as_of)
        .group_by("user_key", "item_id")
        .agg(
            pl.col("weight").sum(),
            pl.len().alias("count"),
            pl.col("ts_ms").min().alias("first_ms"),
            pl.col("ts_ms").max().alias("last_ms"),
        )
        .sort("user_key", "item_id")
    )
    users = Vocabulary(pairs.get_column("user_key").unique(maintain_order=True).to_list())
    items = Vocabulary(sorted(pairs.get_column("item_id").unique().to_list()))
    rows = users.indices(pairs.get_column("user_key").to_list())
    cols = items.indices(pairs.get_column("item_id").to_list())
    matrix = csr_matrix(
        (pairs.get_column("weight").to_numpy().astype(np.float32), (rows, cols)),
        shape=(len(users), len(items)),
    )
    return Interactions(users, items, matrix, pairs)


# -- model input ----------------------------------------------------------------------------------
def pair_vocabularies(pairs: pl.DataFrame) -> tuple[Vocabulary, Vocabulary]:
    """The users (first-seen order) and items (sorted) of a pairs frame (``user_key``,
    ``item_id``): the vocabularies every fitted recommender is indexed by."""
    users = Vocabulary(pairs.get_column("user_key").unique(maintain_order=True).to_list())
    items = Vocabulary(sorted(pairs.get_column("item_id").unique().to_list()))
    return users, items


def index_keys(keys: pl.Series, vocab: Vocabulary) -> NDArray[np.int64]:
    """Vectorised ``vocab.indices`` (``-1`` for unknown keys): a hash join, not a Python loop.

    >>> index_keys(pl.Series(["b", "x", "a"]), Vocabulary(["a", "b"])).tolist()
    [1, -1, 0]
    """
    lookup = pl.DataFrame(
        {"k": vocab.ids, "i": np.arange(len(vocab), dtype=np.int64)},
        schema={"k": pl.String, "i": pl.Int64},
    )
    joined = pl.DataFrame({"k": keys.cast(pl.String)}).join(
        lookup, on="k", how="left", maintain_order="left"
    )
    return joined.get_column("i").fill_null(-1).to_numpy()


def training_data(
    pairs: pl.DataFrame,
    users: Vocabulary,
    items: Vocabulary,
    *,
    user_groups: NDArray[np.int32] | None = None,
) -> TrainingData:
    """A pairs frame (``user_key``, ``item_id``, ``ts_ms``, ``weight``) as model input over
    the given vocabularies; pairs whose user or item they do not hold are left out."""
    u = index_keys(pairs.get_column("user_key"), users)
    i = index_keys(pairs.get_column("item_id"), items)
    keep = (u >= 0) & (i >= 0)
    return TrainingData.from_arrays(
        len(users),
        len(items),
        u[keep],
        i[keep],
        ts=pairs.get_column("ts_ms").to_numpy()[keep] / 1000.0,
        weight=pairs.get_column("weight").to_numpy()[keep],
        user_groups=user_groups,
    )
