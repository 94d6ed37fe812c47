"""Computing features from cleaned events, vectorised with Polars (no per-event Python).

What the computation has to leave out or clamp (events on items missing from the catalogue,
more clicks than impressions, unreadable payloads) is counted, and reported as one
:class:`~tastebud.errors.DataWarning` per problem: by each function called on its own, or,
summed over a build's partitions, by ``build_snapshot`` (pass ``problems``).
"""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl
from typing_extensions import TypedDict

from tastebud.features.stats import DataProblems
from tastebud.pipeline import InteractionConfig, interaction_weights

__all__ = [
    "ContextFeatures",
    "assign_segments",
    "context_features",
    "item_features",
    "user_features",
]

_DAY_MS = 86_400_000
_HOUR_MS = 3_600_000
_PARTS = ("night", "morning", "afternoon", "evening")
_SEASONS = dict.fromkeys((12, 1, 2), "winter") | dict.fromkeys((3, 4, 5), "spring")
_SEASONS |= dict.fromkeys((6, 7, 8), "summer") | dict.fromkeys((9, 10, 11), "autumn")
_ITEM_EVENTS = ("page_view", "click", "content_engagement", "rating", "interaction", "conversion")


class ContextFeatures(TypedDict):
    """The context features of a moment (the ``context`` entity of a snapshot)."""

    hour_of_day: int
    day_of_week: str
    """The English day name, e.g. ``Friday``."""
    is_weekend: bool
    season: str
    """``winter``, ``spring``, ``summer`` or ``autumn`` (northern hemisphere)."""


def context_features(as_of_ms: int) -> ContextFeatures:
    """Temporal context of a moment (UTC).

    >>> context_features(1767312000000)  # 2026-01-02 00:00 UTC, a Friday
    {'hour_of_day': 0, 'day_of_week': 'Friday', 'is_weekend': False, 'season': 'winter'}
    """
    t = datetime.fromtimestamp(as_of_ms / 1000, tz=UTC)
    return {
        "hour_of_day": t.hour,
        "day_of_week": t.strftime("%A"),
        "is_weekend": t.weekday() >= 5,
        "season": _SEASONS[t.month],
    }


def _mode(column: str, *, ignore: str | None = None) -> pl.Expr:
    # Most frequent value; ties broken by the value itself, so results are deterministic.
    values = pl.col(column).drop_nulls()
    if ignore is not None:
        values = values.filter(values != ignore)
    return values.mode().sort().first()


def user_features(
    events: pl.DataFrame,
    items: pl.DataFrame,
    as_of_ms: int,
    interaction_config: InteractionConfig | None = None,
    *,
    problems: DataProblems | None = None,
) -> pl.DataFrame:
    """One row per user with every user feature, from cleaned events before ``as_of_ms``.

    Args:
        events: Output of ``pipeline.clean_events`` (``session``, ``device_type`` columns).
        items: Catalogue frame with ``item_id`` and ``categories`` (list of strings).
        as_of_ms: Snapshot time; events at or after it must already be excluded.
        interaction_config: Weights of the category interests (default ``InteractionConfig()``).
        problems: Where to count data problems; without it they are issued at once as
            :class:`~tastebud.errors.DataWarning`.

    Warns:
        DataWarning: ``feature_usage`` events without a feature name, interaction events on
            items missing from the catalogue, users with more clicks than impressions (their
            ``click_through_rate`` capped at 1).
    """
    tally = DataProblems() if problems is None else problems
    t = pl.col("event_type")
    sessions = (
        events.group_by("user_key", "session")
        .agg(
            pl.col("ts_ms").min().alias("start"),
            pl.col("ts_ms").max().alias("end"),
            (t == "page_view").sum().alias("pages"),
            (t == "conversion").any().alias("converted"),
        )
        .with_columns(
            ((pl.col("start") // _HOUR_MS) % 24 // 6).alias("part"),
        )
    )
    per_session = sessions.group_by("user_key").agg(
        pl.len().alias("total_sessions"),
        ((pl.col("end") - pl.col("start")) / 1000).mean().alias("session_duration_avg"),
        pl.col("pages").sum().alias("_pages"),
        (pl.col("pages") == 1).sum().alias("_bounces"),
        (pl.col("pages") >= 1).sum().alias("_page_sessions"),
        pl.col("converted").sum().alias("_conversions"),
        _mode("part").alias("_part"),
    )
    counts = events.group_by("user_key").agg(
        (t == "page_view").sum().alias("_views"),
        (t == "page_load").sum().alias("_loads"),
        (t == "click").sum().alias("_clicks"),
        (t == "impression").sum().alias("_impressions"),
        (t == "error").sum().alias("_errors"),
        (t == "search").sum().alias("_searches"),
        pl.col("ts_ms").min().alias("_first"),
        pl.col("ts_ms").max().alias("_last"),
        (pl.col("ts_ms") // _DAY_MS).n_unique().alias("_days"),
        _mode("device_type", ignore="unknown").alias("_device"),
    )
    usage = events.filter(t == "feature_usage").with_columns(
        pl.col("data").str.json_path_match("$.feature").alias("feature")
    )
    tally.add(
        "feature_usage events without a feature name (left out of feature_adoption)",
        usage.get_column("feature").null_count(),
    )
    adoption = (
        usage.drop_nulls("feature")
        .group_by("user_key", "feature")
        .len()
        .group_by("user_key")
        .agg(pl.struct("feature", "len").alias("_adoption"))
    )
    interests = _category_interests(events, items, as_of_ms, interaction_config, tally)
    weeks = ((as_of_ms - pl.col("_first")) / (7 * _DAY_MS)).clip(lower_bound=1.0)
    denominator_ctr = (
        pl.when(pl.col("_impressions") > 0).then(pl.col("_impressions")).otherwise(pl.col("_views"))
    )
    tally.add(
        "users with more clicks than impressions (or page views, when never shown a list): "
        "click_through_rate capped at 1",
        counts.filter((denominator_ctr > 0) & (pl.col("_clicks") > denominator_ctr)).height,
    )
    out = (
        counts.join(per_session, on="user_key", how="left")
        .join(adoption, on="user_key", how="left")
        .join(interests, on="user_key", how="left")
        .with_columns(
            (pl.col("_pages") / pl.col("total_sessions")).alias("pages_per_session"),
            pl.when(pl.col("_page_sessions") > 0)
            .then(pl.col("_bounces") / pl.col("_page_sessions"))
            .alias("bounce_rate"),
            (pl.col("_days") / weeks).alias("return_frequency"),
            pl.col("_part")
            .replace_strict(dict(enumerate(_PARTS)), return_dtype=pl.String)
            .alias("time_of_day_preference"),
            pl.col("_device").alias("device_type_preference"),
            ((as_of_ms - pl.col("_last")) / _HOUR_MS).alias("session_recency"),
            pl.when(denominator_ctr > 0)
            .then((pl.col("_clicks") / denominator_ctr).clip(upper_bound=1.0))
            .alias("click_through_rate"),
            (pl.col("_conversions") / pl.col("total_sessions")).alias("conversion_rate"),
            pl.when(pl.col("_views") + pl.col("_loads") > 0)
            .then(pl.col("_errors") / (pl.col("_views") + pl.col("_loads")))
            .alias("error_rate"),
            (pl.col("_searches") / pl.col("total_sessions")).alias("search_frequency"),
            pl.col("_adoption").alias("feature_adoption"),
        )
    )
    if problems is None:
        tally.warn(stacklevel=2)
    return (
        out.rename({"_first": "_first_ms"})
        .select(
            "user_key",
            "_first_ms",
            "total_sessions",
            "session_duration_avg",
            "pages_per_session",
            "bounce_rate",
            "return_frequency",
            "time_of_day_preference",
            "device_type_preference",
            "content_category_interests",
            "session_recency",
            "click_through_rate",
            "conversion_rate",
            "error_rate",
            "search_frequency",
            "feature_adoption",
        )
        .sort("user_key")
    )


def _category_interests(
    events: pl.DataFrame,
    items: pl.DataFrame,
    as_of_ms: int,
    config: InteractionConfig | None,
    problems: DataProblems,
) -> pl.DataFrame:
    weights = interaction_weights(events, config or InteractionConfig(), as_of_ms)
    problems.add(
        "interaction events on items missing from the catalogue (no category: left out of "
        "content_category_interests)",
        weights.join(items.select("item_id"), on="item_id", how="anti").height,
    )
    per_category = (
        weights.join(items.select("item_id", "categories"), on="item_id", how="inner")
        .explode("categories")
        .drop_nulls("categories")
        .group_by("user_key", "categories")
        .agg(pl.col("weight").sum())
        .sort(["user_key", "weight", "categories"], descending=[False, True, False])
    )
    return per_category.group_by("user_key", maintain_order=True).agg(
        pl.col("categories").head(3).alias("content_category_interests")
    )


def item_features(
    events: pl.DataFrame,
    items: pl.DataFrame,
    as_of_ms: int,
    *,
    problems: DataProblems | None = None,
) -> pl.DataFrame:
    """One row per catalogue item (and per item seen in events) with every item feature.

    Args:
        events: Cleaned events (``item_id``, ``event_type``, ``ts_ms``; ``data`` of impressions).
        items: Catalogue frame with ``item_id``, ``category`` and ``created_ms``.
        as_of_ms: Snapshot time.
        problems: Where to count data problems; without it they are issued at once as
            :class:`~tastebud.errors.DataWarning`.

    Warns:
        DataWarning: impression events without a readable ``item_ids`` list, items with events
            but missing from the catalogue, items with more clicks than impressions (their
            ``item_ctr`` capped at 1).
    """
    tally = DataProblems() if problems is None else problems
    t = pl.col("event_type")
    ts = pl.col("ts_ms")
    recent = events.filter(pl.col("item_id").is_not_null() & (ts >= as_of_ms - 30 * _DAY_MS))
    is_interaction = t.is_in(list(_ITEM_EVENTS))
    activity = recent.group_by("item_id").agg(
        (is_interaction & (ts >= as_of_ms - 7 * _DAY_MS)).sum().alias("item_popularity_7d"),
        is_interaction.sum().alias("item_popularity_30d"),
        (is_interaction & (ts >= as_of_ms - 14 * _DAY_MS) & (ts < as_of_ms - 7 * _DAY_MS))
        .sum()
        .alias("_prev_7d"),
        (t == "click").sum().alias("_clicks"),
        (t == "page_view").sum().alias("_views"),
    )
    served = events.filter((t == "impression") & (ts >= as_of_ms - 30 * _DAY_MS)).with_columns(
        pl.col("data")
        .str.json_path_match("$.item_ids")
        .str.json_decode(pl.List(pl.String))
        .alias("shown")
    )
    tally.add(
        "impression events without a readable item_ids list (left out of item_ctr)",
        served.get_column("shown").null_count(),
    )
    impressions = (
        served.explode("shown")
        .drop_nulls("shown")
        .group_by(pl.col("shown").alias("item_id"))
        .len("_impressions")
    )
    catalogue = items.select(
        "item_id",
        pl.col("category").alias("item_category"),
        ((as_of_ms - pl.col("created_ms")) / _DAY_MS).alias("item_age_days"),
    )
    out = (
        catalogue.join(activity, on="item_id", how="full", coalesce=True)
        .join(impressions, on="item_id", how="left")
        .with_columns(
            pl.col("item_popularity_7d", "item_popularity_30d", "_prev_7d", "_clicks", "_views")
            .fill_null(0)
            .cast(pl.Int64),
            pl.col("_impressions").fill_null(0),
        )
    )
    shown = (
        pl.when(pl.col("_impressions") > 0).then(pl.col("_impressions")).otherwise(pl.col("_views"))
    )
    tally.add(
        "items with events in the last 30 days are missing from the catalogue (item_category "
        "and item_age_days null)",
        activity.join(catalogue.select("item_id"), on="item_id", how="anti").height,
    )
    tally.add(
        "items with more clicks than impressions (or page views, when never in a served "
        "list): item_ctr capped at 1",
        out.filter((shown > 0) & (pl.col("_clicks") > shown)).height,
    )
    if problems is None:
        tally.warn(stacklevel=2)
    return out.select(
        "item_id",
        "item_popularity_7d",
        "item_popularity_30d",
        ((pl.col("item_popularity_7d") + 1) / (pl.col("_prev_7d") + 1)).alias("item_trend"),
        pl.when(shown > 0)
        .then((pl.col("_clicks") / shown).clip(upper_bound=1.0))
        .alias("item_ctr"),
        "item_category",
        "item_age_days",
    ).sort("item_id")


def assign_segments(users: pl.DataFrame, as_of_ms: int, *, min_users: int = 20) -> pl.DataFrame:
    """Add ``lifecycle_cohort`` and ``segment`` to a user feature frame (all users of a snapshot:
    segment sizes are global).

    A segment smaller than ``min_users`` is merged into its cohort, and a cohort that is still
    too small into ``all``: no segment identifies a handful of people.
    """
    first_age = (as_of_ms - pl.col("_first_ms")) / _DAY_MS
    recency = pl.col("session_recency") / 24
    cohort = (
        pl.when(first_age <= 14)
        .then(pl.lit("new"))
        .when(recency <= 7)
        .then(pl.lit("active"))
        .when(recency <= 30)
        .then(pl.lit("dormant"))
        .otherwise(pl.lit("churned"))
    )
    top = pl.col("content_category_interests").list.first().fill_null("none")
    out = users.with_columns(cohort.alias("lifecycle_cohort"))
    out = out.with_columns((pl.col("lifecycle_cohort") + ":" + top).alias("segment"))
    small = pl.len().over("segment") < min_users
    out = out.with_columns(
        pl.when(small)
        .then(pl.col("lifecycle_cohort"))
        .otherwise(pl.col("segment"))
        .alias("segment")
    )
    small = pl.len().over("segment") < min_users
    return out.with_columns(
        pl.when(small).then(pl.lit("all")).otherwise(pl.col("segment")).alias("segment")
    ).drop("_first_ms")
