"""Behaviour labels from the event stream, point-in-time correct with the feature store.

Two targets, both defined for the users **active** as of a time ``T`` (at least one event in
``[T - activity_days, T)``):

* ``churn``: the user has **no** event at all in ``[T, T + churn_days)``;
* ``conversion``: the user has a ``conversion`` event in ``[T, T + conversion_days)``.

Every window is half-open, the same convention as ``load_events(until_ms=...)`` and the feature
snapshots (a snapshot as of ``T`` reads events with ``ts_ms < T``): an event exactly at ``T``
belongs to the *future*, one exactly at ``T - activity_days`` makes the user active, and one
exactly at ``T + window`` is outside the future window. So the features of a label (events
before ``T``) and its outcome (events from ``T`` on) never share an event.

A label is only defined once its future window has been fully observed: asking for an as-of time
whose window ends after the latest stored event raises :class:`~tastebud.errors.InvalidInput`.

Training sets stack the labels of several as-of times and join each one with the user's
features from the snapshot valid at its time (:func:`event_training_set`), flattened into
columns a classifier can use.

Labels come from events only: this module knows nothing of how the events were made. To score
event-trained models against what really drove a simulated population, ask the simulator
(:meth:`tastebud.simulator.Simulator.planted_labels`); an import contract keeps ``training``
from importing it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Literal

import polars as pl
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import text

from tastebud.errors import InvalidInput
from tastebud.features import build_snapshot, list_snapshots, training_set
from tastebud.features.flat import flatten_frame
from tastebud.monitoring import get_logger
from tastebud.pipeline import load_events
from tastebud.store import Store

__all__ = [
    "KEY_COLUMNS",
    "LabelWindows",
    "Target",
    "default_as_of_times",
    "event_labels",
    "event_training_set",
]

_log = get_logger(__name__)
_DAY_MS = 86_400_000

Target = Literal["churn", "conversion"]
"""What a label says: the user stops (``churn``) or converts (``conversion``)."""

KEY_COLUMNS: tuple[str, ...] = ("user_key", "as_of_ms", "label", "snapshot_id")
"""Columns of :func:`event_training_set` that are not features (every other column is one)."""

_LABEL_SCHEMA = pl.Schema({"user_key": pl.String, "as_of_ms": pl.Int64, "label": pl.Int8})


class LabelWindows(BaseModel):
    """The time windows of the labels, in days (all half-open: start included, end excluded)."""

    model_config = ConfigDict(frozen=True)

    activity_days: int = Field(default=30, ge=1)
    """A user is active as of ``T`` with any event in ``[T - activity_days, T)``."""
    churn_days: int = Field(default=30, ge=1)
    """An active user churns as of ``T`` with no event in ``[T, T + churn_days)``."""
    conversion_days: int = Field(default=7, ge=1)
    """An active user converts as of ``T`` with a ``conversion`` event in
    ``[T, T + conversion_days)``."""

    def future_days(self, target: Target) -> int:
        """Length of the future (outcome) window of ``target``."""
        if target == "churn":
            return self.churn_days
        if target == "conversion":
            return self.conversion_days
        raise InvalidInput(f"unknown target {target!r}: expected 'churn' or 'conversion'")


def _time_range(store: Store) -> tuple[int, int] | None:
    """Earliest and latest event time in the store (``None`` when it holds no event)."""
    with store.engine.connect() as conn:
        lo, hi = conn.execute(text("SELECT min(ts_ms), max(ts_ms) FROM events")).one()
    return None if lo is None or hi is None else (int(lo), int(hi))


def _iso(ms: float) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="milliseconds")


def _duration(ms: float) -> str:
    """``ms`` in days, or in milliseconds when under a minute (``0.00 days`` would mislead)."""
    return f"{ms / _DAY_MS:.2f} days" if ms >= 60_000 else f"{ms:.0f} ms"


def _check_observed(as_of: Sequence[int], future_ms: int, latest_ms: int) -> None:
    """Raise when a future window ends after the latest observed event."""
    worst = max(as_of)
    if worst + future_ms > latest_ms:
        raise InvalidInput(
            f"the label window after as-of time {_iso(worst)} is not fully observed: it needs "
            f"{future_ms // _DAY_MS} days of events after it, but the latest event is at "
            f"{_iso(latest_ms)}, {_duration(worst + future_ms - latest_ms)} short; use an as-of "
            f"time at or before {_iso(latest_ms - future_ms)}"
        )


def event_labels(
    store: Store,
    target: Target,
    as_of_ms: Sequence[int],
    windows: LabelWindows | None = None,
) -> pl.DataFrame:
    """Churn or conversion labels of every active user at each as-of time.

    Every stored event counts, before any cleaning: users the cleaning pipeline flags as bots
    are included (their labels are as well defined as anyone's and snapshots keep their
    features too); a job that wants them out can drop the users
    ``clean_events(...).flagged_users`` lists.

    Args:
        store: The event store.
        target: ``churn`` or ``conversion`` (see the module docstring for the definitions).
        as_of_ms: Label times (ms since epoch, UTC); duplicates are ignored.
        windows: Window lengths (default :class:`LabelWindows`).

    Returns:
        Columns ``user_key`` (String), ``as_of_ms`` (Int64) and ``label`` (Int8, 1 = churned
        or converted): one row per (user active as of ``T``, ``T``), sorted by time then user.

    Raises:
        InvalidInput: No as-of time, no event in the store, an unknown target, or a future
            window that ends after the latest stored event (the message says by how many days).
    """
    w = windows or LabelWindows()
    future_ms = w.future_days(target) * _DAY_MS
    active_ms = w.activity_days * _DAY_MS
    times = sorted({int(t) for t in as_of_ms})
    if not times:
        raise InvalidInput("no as-of time given")
    span = _time_range(store)
    if span is None:
        raise InvalidInput("the store holds no events: no label can be derived")
    _check_observed(times, future_ms, span[1])
    raw = load_events(
        store, since_ms=times[0] - active_ms, until_ms=times[-1] + future_ms, slim=True
    )
    events = raw.lazy().select(
        "user_key", "ts_ms", (pl.col("event_type") == "conversion").alias("_conversion")
    )
    ts = pl.col("ts_ms")
    parts: list[pl.LazyFrame] = []
    # One vectorised pass per as-of time (a handful), never per event.
    for t in times:
        active = events.filter((ts >= t - active_ms) & (ts < t)).select("user_key").unique()
        future = events.filter((ts >= t) & (ts < t + future_ms))
        if target == "conversion":
            future = future.filter(pl.col("_conversion"))
        hits = future.select("user_key").unique().with_columns(pl.lit(True).alias("_hit"))
        hit = pl.col("_hit").fill_null(False)
        label = ~hit if target == "churn" else hit
        parts.append(
            active.join(hits, on="user_key", how="left").select(
                "user_key",
                pl.lit(t, pl.Int64).alias("as_of_ms"),
                label.cast(pl.Int8).alias("label"),
            )
        )
    labels = pl.concat(parts).collect().sort("as_of_ms", "user_key")
    if labels.is_empty():
        labels = pl.DataFrame(schema=_LABEL_SCHEMA)
    _log.info(
        "labels derived",
        target=target,
        as_of_times=len(times),
        rows=labels.height,
        positives=int(labels.get_column("label").sum()),
    )
    return labels


def default_as_of_times(
    store: Store,
    target: Target,
    windows: LabelWindows | None = None,
    *,
    count: int = 4,
    step_days: int = 7,
) -> list[int]:
    """``count`` as-of times ``step_days`` apart, ascending, the latest being the last time
    whose future window is fully observed (latest event time minus the window).

    Raises:
        InvalidInput: ``count`` or ``step_days`` below 1, no event in the store, or the events
            span too little time: the earliest as-of time would not come after the first event.
    """
    if count < 1 or step_days < 1:
        raise InvalidInput("count and step_days must be at least 1")
    w = windows or LabelWindows()
    future_ms = w.future_days(target) * _DAY_MS
    span = _time_range(store)
    if span is None:
        raise InvalidInput("the store holds no events: no label can be derived")
    first_ms, latest_ms = span
    last = latest_ms - future_ms
    times = [last - (count - 1 - i) * step_days * _DAY_MS for i in range(count)]
    if times[0] <= first_ms:
        days = (latest_ms - first_ms) / _DAY_MS
        needed = w.future_days(target) + (count - 1) * step_days
        raise InvalidInput(
            f"the events span {days:.2f} days; {count} {target} as-of times {step_days} days "
            f"apart need more than {needed} days (fewer or closer as-of times need less)"
        )
    return times


def event_training_set(
    store: Store,
    target: Target,
    as_of_ms: Sequence[int] | None = None,
    windows: LabelWindows | None = None,
    *,
    build_missing: bool = True,
) -> pl.DataFrame:
    """Labels of several as-of times, each joined with the features valid at its time.

    Point-in-time correct: a label as of ``T`` gets the user features of the newest snapshot
    built as of ``T`` or earlier, which read only events strictly before ``T``, while the label
    reads events from ``T`` on. Context features (hour, weekday, season of ``T``) are not
    joined: they are the same for every row of an as-of time, so they cannot rank users and
    would only let a model tell the as-of times apart.

    Args:
        store: The event store with its feature snapshots.
        target: ``churn`` or ``conversion``.
        as_of_ms: Label times; default :func:`default_as_of_times`.
        windows: Window lengths (default :class:`LabelWindows`).
        build_missing: Build a snapshot at every as-of time that has none exactly at that time.
            Without it, an older snapshot is used (features then describe the user as of that
            snapshot, e.g. ``session_recency``), or none at all (null features).

    Returns:
        :data:`KEY_COLUMNS` (``user_key``, ``as_of_ms``, ``label``, ``snapshot_id``) plus one
        flat column per feature: numbers and booleans as stored, categories as String, nested
        features flattened (see below). Sorted by time then user.

        * ``content_category_interests`` (top 3 categories) ->
          ``content_category_interests_count`` and ``content_category_interests_top``;
        * ``feature_adoption`` (uses per product feature) -> ``feature_adoption_total``,
          ``feature_adoption_distinct`` and ``feature_adoption_top_share``.

    Raises:
        InvalidInput: As :func:`event_labels` and :func:`default_as_of_times`.
    """
    w = windows or LabelWindows()
    times = sorted(set(as_of_ms)) if as_of_ms is not None else default_as_of_times(store, target, w)
    labels = event_labels(store, target, times, w)
    if build_missing:
        built = {int(s["as_of_ms"]) for s in list_snapshots(store)}
        for t in times:
            if t not in built:
                build_snapshot(store, as_of_ms=t)
    joined = training_set(store, labels)
    if "snapshot_as_of_ms" in joined.columns:
        joined = joined.drop("snapshot_as_of_ms")
    flat = flatten_frame(joined)
    return flat.select(*KEY_COLUMNS, *(c for c in flat.columns if c not in KEY_COLUMNS))
