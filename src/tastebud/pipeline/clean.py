"""Cleaning: validation, de-duplication, missing values, bots and outliers, sessionization.

Every stage reports rows in, rows out and why rows left (:class:`StageReport`). Flagged users
(bots) are kept in the cleaned events but listed, so that training excludes them without
deleting anything.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl
from pydantic import BaseModel, ConfigDict, Field
from typing_extensions import TypedDict

from tastebud.events.data import DATA_MODELS
from tastebud.events.schema import SCHEMA_VERSION

__all__ = ["CleanResult", "PipelineConfig", "StageReport", "StageReportJSON", "clean_events"]

_ITEM_TYPES = ("content_engagement", "rating", "feedback", "interaction")
_KNOWN_FIELDS = {name: frozenset(model.model_fields) for name, model in DATA_MODELS.items()}
_FIELD_SAMPLE = 50_000


class PipelineConfig(BaseModel):
    """Cleaning rules. Rate rules apply to live traffic (``source == "api"``) only: imported
    datasets carry historical timestamps that would look like bursts."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    near_duplicate_ms: int = Field(default=1000, ge=0)
    """Same user, type and item within this many ms: a double-fired event, dropped."""
    bot_events_per_minute: int = Field(default=120, ge=1)
    """A user with more live events than this in one minute is flagged as a bot."""
    max_dwell_ms: int = Field(default=4 * 3600 * 1000, ge=1)
    """A page or engagement time above this is impossible (a tab left open): row dropped."""
    session_gap_ms: int = Field(default=30 * 60 * 1000, ge=1)
    """Inactivity that starts a new session when the client sent no session id."""
    session_max_ms: int = Field(default=24 * 3600 * 1000, ge=1)
    """Sessions are cut into pieces of at most this length."""


@dataclass
class StageReport:
    """What one stage did."""

    stage: str
    rows_in: int
    rows_out: int
    removed: dict[str, int] = field(default_factory=dict)
    """Rows removed, by reason."""
    notes: dict[str, int] = field(default_factory=dict)
    """Other counts (unknown fields, filled values, flagged users...)."""

    def merge(self, other: StageReport) -> StageReport:
        """Add the counts of the same stage on another partition."""
        out = StageReport(self.stage, self.rows_in + other.rows_in, self.rows_out + other.rows_out)
        for src in (self, other):
            for k, v in src.removed.items():
                out.removed[k] = out.removed.get(k, 0) + v
            for k, v in src.notes.items():
                out.notes[k] = out.notes.get(k, 0) + v
        return out

    def to_json(self) -> StageReportJSON:
        """The report as stored with a feature snapshot (``feature_snapshots.reports``)."""
        return {
            "stage": self.stage,
            "rows_in": self.rows_in,
            "rows_out": self.rows_out,
            "removed": self.removed,
            "notes": self.notes,
        }


class StageReportJSON(TypedDict):
    """A :class:`StageReport` as JSON."""

    stage: str
    rows_in: int
    rows_out: int
    removed: dict[str, int]
    notes: dict[str, int]


@dataclass
class CleanResult:
    """Cleaned events (with ``session``, ``device_type``, ``duration_ms`` columns), the users
    flagged as bots, and one report per stage."""

    events: pl.DataFrame
    flagged_users: set[str]
    reports: list[StageReport]

    def training_events(self) -> pl.DataFrame:
        """Events of users not flagged (what models train on)."""
        if not self.flagged_users:
            return self.events
        return self.events.filter(~pl.col("user_key").is_in(list(self.flagged_users)))


def _validate(df: pl.DataFrame) -> tuple[pl.DataFrame, StageReport]:
    n = df.height
    ok_version = pl.col("schema_version") == SCHEMA_VERSION
    ok_type = pl.col("event_type").is_in(list(DATA_MODELS)) | pl.col("event_type").str.starts_with(
        "custom."
    )
    kept = df.filter(ok_version & ok_type)
    report = StageReport("validate", n, kept.height)
    bad_version = df.filter(~ok_version).height
    if bad_version:
        report.removed["unsupported schema_version"] = bad_version
    bad_type = df.filter(ok_version & ~ok_type).height
    if bad_type:
        report.removed["unknown event_type"] = bad_type
    # Unknown data fields (kept, counted): top-level keys outside the type's model. Counted on
    # a fixed sample of at most 50,000 events: exact there, and cheap on any volume.
    sample = kept if kept.height <= _FIELD_SAMPLE else kept.sample(_FIELD_SAMPLE, seed=0)
    keys = (
        sample.select("event_type", pl.col("data").str.extract_all(r'"([A-Za-z0-9_]+)"\s*:'))
        .explode("data")
        .drop_nulls("data")
        .with_columns(pl.col("data").str.extract(r'"([A-Za-z0-9_]+)"'))
    )
    unknown = 0
    for (event_type,), group in keys.group_by("event_type"):
        known = _KNOWN_FIELDS.get(str(event_type))
        if known is not None:
            unknown += group.filter(~pl.col("data").is_in(list(known))).height
    report.notes["unknown data fields"] = unknown
    report.notes["events checked for unknown fields"] = sample.height
    return kept, report


def _dedupe(df: pl.DataFrame, cfg: PipelineConfig) -> tuple[pl.DataFrame, StageReport]:
    n = df.height
    df = df.unique(subset="event_id", keep="first", maintain_order=True)
    exact = n - df.height
    # One sort by (user, time) serves this stage and sessionization; within each (user, type,
    # item) window the rows are then in time order.
    df = df.sort("user_key", "ts_ms", "id")
    group = ["user_key", "event_type", "item_id"]
    same = pl.col("item_id").is_not_null() & (
        (pl.col("ts_ms") - pl.col("ts_ms").shift(1).over(group)) < cfg.near_duplicate_ms
    )
    kept = df.filter(~same.fill_null(False))
    report = StageReport("dedupe", n, kept.height)
    if exact:
        report.removed["same event_id"] = exact
    near = df.height - kept.height
    if near:
        report.removed[f"same user, type and item within {cfg.near_duplicate_ms} ms"] = near
    return kept, report


def _missing(df: pl.DataFrame) -> tuple[pl.DataFrame, StageReport]:
    """Missing-value policy: item events without an item are dropped; the device type defaults
    to ``unknown``; times and durations stay null (features skip nulls); session ids are filled
    by sessionization."""
    n = df.height
    no_item = pl.col("event_type").is_in(list(_ITEM_TYPES)) & pl.col("item_id").is_null()
    kept = df.filter(~no_item)
    # A slim load brings device_type extracted by the database; otherwise read it here.
    device = (
        pl.col("device_type")
        if "device_type" in kept.columns
        else pl.col("context").str.json_path_match("$.device_type")
    )
    kept = kept.with_columns(
        device.fill_null("unknown").alias("device_type"),
        pl.coalesce(
            pl.col("data").str.json_path_match("$.duration_ms"),
            pl.col("data").str.json_path_match("$.time_spent_ms"),
        )
        .cast(pl.Float64, strict=False)
        .alias("duration_ms"),
    )
    report = StageReport("missing values", n, kept.height)
    if n - kept.height:
        report.removed["item event without item_id"] = n - kept.height
    report.notes["device_type filled with 'unknown'"] = kept.filter(
        pl.col("device_type") == "unknown"
    ).height
    report.notes["session_id missing"] = kept.filter(pl.col("session_id").is_null()).height
    return kept, report


def _bots(df: pl.DataFrame, cfg: PipelineConfig) -> tuple[pl.DataFrame, set[str], StageReport]:
    n = df.height
    per_minute = (
        df.filter(pl.col("source") == "api")
        .group_by("user_key", (pl.col("ts_ms") // 60_000).alias("minute"))
        .len()
        .filter(pl.col("len") > cfg.bot_events_per_minute)
    )
    flagged = set(per_minute.get_column("user_key").unique().to_list())
    too_long = pl.col("duration_ms") > cfg.max_dwell_ms
    kept = df.filter(~too_long.fill_null(False))
    report = StageReport("bots and outliers", n, kept.height)
    if n - kept.height:
        report.removed[f"dwell above {cfg.max_dwell_ms // 60_000} min"] = n - kept.height
    report.notes["users flagged as bots"] = len(flagged)
    return kept, flagged, report


def _sessionize(df: pl.DataFrame, cfg: PipelineConfig) -> tuple[pl.DataFrame, StageReport]:
    n = df.height
    # Already sorted by (user, time) by the dedupe stage; filters keep the order.
    gap = pl.col("ts_ms") - pl.col("ts_ms").shift(1).over("user_key")
    new_session = (gap > cfg.session_gap_ms).fill_null(True)
    df = df.with_columns(
        pl.when(pl.col("session_id").is_not_null())
        .then(pl.lit("c:") + pl.col("session_id"))
        .otherwise(pl.lit("g:") + new_session.cum_sum().over("user_key").cast(pl.String))
        .alias("_base")
    )
    start = pl.col("ts_ms").min().over("user_key", "_base")
    piece = ((pl.col("ts_ms") - start) // cfg.session_max_ms).cast(pl.String)
    df = df.with_columns((pl.col("_base") + "/" + piece).alias("session")).drop("_base")
    report = StageReport("sessionize", n, df.height)
    report.notes["sessions"] = df.select(pl.struct("user_key", "session").n_unique()).item()
    return df, report


def clean_events(df: pl.DataFrame, config: PipelineConfig | None = None) -> CleanResult:
    """Run every cleaning stage on a raw event frame (``pipeline.load.EVENT_SCHEMA``)."""
    cfg = config or PipelineConfig()
    df, r1 = _validate(df)
    df, r2 = _dedupe(df, cfg)
    df, r3 = _missing(df)
    df, flagged, r4 = _bots(df, cfg)
    df, r5 = _sessionize(df, cfg)
    return CleanResult(df, flagged, [r1, r2, r3, r4, r5])
