"""Exposures and outcomes per user, the unit of randomisation (never per event).

A user is exposed from their first ``impression`` recording the experiment; their variant is
the one recorded. An outcome counts for the experiment when it happens within the attribution
window after one of the user's exposures:

- a ``click`` on an item that an exposure showed (interleaving: credited to the variant that
  placed it in the latest list showing it);
- a ``conversion`` (and its ``value``), ``content_engagement`` time, ``feedback``
  (``not_interested``, ``dislike``);
- a return: any event of the user a day or more after their first exposure.

Each user's behaviour in the ``pre_period_days`` before their first exposure (clicks,
conversions, value, engagement, activity) is kept as CUPED's covariate.

This is one of the read-only bulk loaders of docs/architecture.md: it reads the event log in
bulk with plain SQL (two range scans over ``ts_ms``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import orjson
import polars as pl
from sqlalchemy import text

from tastebud.experiments.definitions import Experiment
from tastebud.store import Store

__all__ = [
    "DAY_MS",
    "Outcomes",
    "USER_COLUMNS",
    "load_outcomes",
]

DAY_MS = 86_400_000

_OUTCOME_TYPES = ("click", "conversion", "content_engagement", "feedback")

USER_COLUMNS = (
    "variant",
    "answers",
    "shown",
    "clicks",
    "credit",
    "converted",
    "revenue",
    "engagement_s",
    "returned",
    "not_interested",
    "dislike",
    "cold_start",
    "latency_ms",
    "errors",
    "pre_clicks",
    "pre_converted",
    "pre_revenue",
    "pre_engagement_s",
    "pre_active",
)


@dataclass(frozen=True)
class Outcomes:
    """One row per exposed user (``USER_COLUMNS``), and what the experiment's data says
    about itself."""

    users: pl.DataFrame
    """``user_key`` plus ``USER_COLUMNS``; ``credit`` is interleaving's clicks credited to
    the user's own variant minus those credited to the other one."""
    mixed_users: int
    """Users whose impressions recorded more than one variant (kept in their first)."""
    first_ms: int | None
    """The first exposure."""
    last_ms: int | None
    """The last exposure."""


def _frame(store: Store, sql: str, params: dict[str, object]) -> pl.DataFrame:
    with store.engine.connect() as conn:
        rows = conn.execute(text(sql), params).all()
    schema = {
        "user_key": pl.String,
        "event_type": pl.String,
        "ts_ms": pl.Int64,
        "item_id": pl.String,
        "data": pl.String,
    }
    return pl.DataFrame([tuple(r) for r in rows], schema=schema, orient="row")


def _impressions(store: Store, exp: Experiment, lo: int, hi: int) -> tuple[pl.DataFrame, int]:
    """One row per impression of the experiment: user, time, variant, items, teams, ..."""
    name = exp.name
    frame = _frame(
        store,
        "SELECT user_key, event_type, ts_ms, item_id, CAST(data AS TEXT) AS data FROM events "
        "WHERE event_type = 'impression' AND ts_ms >= :lo AND ts_ms <= :hi "
        "AND CAST(data AS TEXT) LIKE :pattern",
        {"lo": lo, "hi": hi, "pattern": f'%"{name}"%'},
    )
    rows = []
    for user, ts, data in frame.select("user_key", "ts_ms", "data").iter_rows():
        d = orjson.loads(data)
        variant = (d.get("experiments") or {}).get(name)
        if variant is None:
            continue
        teams = d.get("teams")
        rows.append(
            (
                user,
                ts,
                variant,
                d.get("item_ids") or [],
                teams if isinstance(teams, list) else None,
                d.get("mode") == "cold_start",
                float(d.get("latency_ms") or 0.0),
                bool(d.get("error")),
            )
        )
    imp = pl.DataFrame(
        rows,
        schema={
            "user_key": pl.String,
            "ts_ms": pl.Int64,
            "variant": pl.String,
            "item_ids": pl.List(pl.String),
            "teams": pl.List(pl.String),
            "cold_start": pl.Boolean,
            "latency_ms": pl.Float64,
            "error": pl.Boolean,
        },
        orient="row",
    )
    first = imp.sort("ts_ms").group_by("user_key").agg(pl.col("variant").n_unique().alias("n"))
    mixed = int(first.filter(pl.col("n") > 1).height)
    return imp, mixed


def load_outcomes(store: Store, exp: Experiment, *, now_ms: int | None = None) -> Outcomes:
    """Exposures and outcomes of ``exp`` per user (see the module docstring)."""
    spec = exp.spec
    now = int(time.time() * 1000) if now_ms is None else now_ms
    start = exp.started_ms if exp.started_ms is not None else exp.created_ms
    end = exp.stopped_ms if exp.stopped_ms is not None else now
    window = int(spec.attribution_window_hours * 3_600_000)
    pre = int(spec.pre_period_days * DAY_MS)
    imp, mixed = _impressions(store, exp, start, end)
    if imp.is_empty():
        empty = pl.DataFrame(schema={"user_key": pl.String, **_user_schema()})
        return Outcomes(empty, 0, None, None)
    first = (
        imp.sort("ts_ms")
        .group_by("user_key")
        .agg(pl.col("ts_ms").first().alias("first_ms"), pl.col("variant").first())
    )
    per_user = imp.group_by("user_key").agg(
        pl.len().alias("answers"),
        pl.col("item_ids").list.len().sum().alias("shown"),
        pl.col("cold_start").sum().alias("cold_start"),
        pl.col("latency_ms").sum(),
        pl.col("error").sum().alias("errors"),
    )
    users = first.join(per_user, on="user_key")
    keys = set(users["user_key"].to_list())
    events = _frame(
        store,
        "SELECT user_key, event_type, ts_ms, item_id, CAST(data AS TEXT) AS data FROM events "
        "WHERE ts_ms >= :lo AND ts_ms <= :hi AND event_type <> 'impression'",
        {"lo": start - pre, "hi": end + window},
    ).filter(pl.col("user_key").is_in(list(keys)))
    events = events.join(first.select("user_key", "first_ms", "variant"), on="user_key")
    events = events.with_columns(_payload(events))
    before = events.filter(
        (pl.col("ts_ms") < pl.col("first_ms")) & (pl.col("ts_ms") >= pl.col("first_ms") - pre)
    )
    pre_agg = before.group_by("user_key").agg(
        (pl.col("event_type") == "click").sum().alias("pre_clicks"),
        (pl.col("event_type") == "conversion").any().cast(pl.Int64).alias("pre_converted"),
        pl.when(pl.col("event_type") == "conversion")
        .then(pl.col("value"))
        .otherwise(0.0)
        .sum()
        .alias("pre_revenue"),
        pl.when(pl.col("event_type") == "content_engagement")
        .then(pl.col("seconds"))
        .otherwise(0.0)
        .sum()
        .alias("pre_engagement_s"),
        pl.lit(1).alias("pre_active"),
    )
    after = events.filter(pl.col("ts_ms") >= pl.col("first_ms"))
    returned = (
        after.filter(pl.col("ts_ms") >= pl.col("first_ms") + DAY_MS)
        .select("user_key")
        .unique()
        .with_columns(pl.lit(1).alias("returned"))
    )
    # Within the window after the latest exposure before the event.
    exposures = imp.select("user_key", "ts_ms").sort("ts_ms").rename({"ts_ms": "exp_ms"})
    attributed = (
        after.filter(pl.col("event_type") != "click")
        .sort("ts_ms")
        .join_asof(
            exposures, left_on="ts_ms", right_on="exp_ms", by="user_key", check_sortedness=False
        )
        .filter(pl.col("exp_ms").is_not_null() & (pl.col("ts_ms") - pl.col("exp_ms") <= window))
    )
    post_agg = attributed.group_by("user_key").agg(
        (pl.col("event_type") == "conversion").any().cast(pl.Int64).alias("converted"),
        pl.when(pl.col("event_type") == "conversion")
        .then(pl.col("value"))
        .otherwise(0.0)
        .sum()
        .alias("revenue"),
        pl.when(pl.col("event_type") == "content_engagement")
        .then(pl.col("seconds"))
        .otherwise(0.0)
        .sum()
        .alias("engagement_s"),
        ((pl.col("event_type") == "feedback") & (pl.col("kind") == "not_interested"))
        .sum()
        .alias("not_interested"),
        ((pl.col("event_type") == "feedback") & (pl.col("kind") == "dislike"))
        .sum()
        .alias("dislike"),
    )
    click_agg = _clicks(imp, after.filter(pl.col("event_type") == "click"), window)
    out = users
    for part in (click_agg, post_agg, returned, pre_agg):
        out = out.join(part, on="user_key", how="left")
    out = out.with_columns([pl.col(c).fill_null(0) for c in USER_COLUMNS if c != "variant"]).select(
        "user_key", *[pl.col(c).cast(t) for c, t in _user_schema().items()]
    )
    stamps = imp["ts_ms"].to_numpy()
    return Outcomes(out, mixed, int(stamps.min()), int(stamps.max()))


def _clicks(imp: pl.DataFrame, clicks: pl.DataFrame, window: int) -> pl.DataFrame:
    """Clicks on an item an exposure showed within the window before, per user; with
    interleaving, ``credit`` = clicks on items the user's own variant placed minus the
    other's (in the latest list showing the item)."""
    shown = (
        imp.with_columns(
            pl.int_ranges(0, pl.col("item_ids").list.len()).alias("pos"),
        )
        .select("user_key", "ts_ms", "variant", "item_ids", "teams", "pos")
        .explode("item_ids", "pos")
        .rename({"item_ids": "item_id", "ts_ms": "exp_ms"})
        .with_columns(
            pl.when(pl.col("teams").is_not_null())
            .then(pl.col("teams").list.get(pl.col("pos"), null_on_oob=True))
            .otherwise(None)
            .alias("team")
        )
        .drop("teams", "pos")
        .sort("exp_ms")
    )
    c = clicks.filter(pl.col("item_id").is_not_null()).select("user_key", "ts_ms", "item_id")
    if c.is_empty() or shown.is_empty():
        return pl.DataFrame(schema={"user_key": pl.String, "clicks": pl.Int64, "credit": pl.Int64})
    hit = (
        c.sort("ts_ms")
        .join_asof(
            shown.select("user_key", "item_id", "exp_ms", "variant", "team"),
            left_on="ts_ms",
            right_on="exp_ms",
            by=["user_key", "item_id"],
            check_sortedness=False,  # sorted by time overall, which is what the join needs
        )
        .filter(pl.col("exp_ms").is_not_null() & (pl.col("ts_ms") - pl.col("exp_ms") <= window))
    )
    return hit.group_by("user_key").agg(
        pl.len().cast(pl.Int64).alias("clicks"),
        (
            (pl.col("team") == pl.col("variant")).cast(pl.Int64)
            - ((pl.col("team") != pl.col("variant")) & pl.col("team").is_not_null()).cast(pl.Int64)
        )
        .sum()
        .alias("credit"),
    )


def _payload(events: pl.DataFrame) -> list[pl.Series]:
    """``value`` (conversions), ``seconds`` (engagement) and ``kind`` (feedback) from the
    events' JSON data."""
    values, seconds, kinds = [], [], []
    for etype, data in events.select("event_type", "data").iter_rows():
        d = orjson.loads(data) if data else {}
        v = d.get("value") if etype == "conversion" else None
        values.append(float(v) if isinstance(v, int | float) and not isinstance(v, bool) else 0.0)
        s = d.get("time_spent_ms") if etype == "content_engagement" else None
        seconds.append(float(s) / 1000 if isinstance(s, int | float) else 0.0)
        k = d.get("kind") if etype == "feedback" else None
        kinds.append(k if isinstance(k, str) else None)
    return [
        pl.Series("value", values, pl.Float64),
        pl.Series("seconds", seconds, pl.Float64),
        pl.Series("kind", kinds, pl.String),
    ]


def _user_schema() -> dict[str, type[pl.DataType]]:
    out: dict[str, type[pl.DataType]] = {}
    for c in USER_COLUMNS:
        if c == "variant":
            out[c] = pl.String
        elif c in ("revenue", "engagement_s", "latency_ms", "pre_revenue", "pre_engagement_s"):
            out[c] = pl.Float64
        else:
            out[c] = pl.Int64
    return out
