"""The data pipeline: every cleaning stage, sessions, interaction weights and the time split."""

from __future__ import annotations

from typing import Any

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tastebud.pipeline import (
    EVENT_SCHEMA,
    InteractionConfig,
    PipelineConfig,
    build_interactions,
    clean_events,
    temporal_user_split,
)

MIN = 60_000


def frame(rows: list[dict[str, Any]]) -> pl.DataFrame:
    full = []
    for i, r in enumerate(rows):
        full.append(
            {
                "id": i,
                "event_id": f"e{i}",
                "event_type": "page_view",
                "user_key": "u",
                "session_id": None,
                "item_id": None,
                "ts_ms": 0,
                "received_ms": 0,
                "source": "api",
                "schema_version": 1,
                "data": "{}",
                "context": None,
                **r,
            }
        )
    return pl.DataFrame(full, schema=EVENT_SCHEMA)


def report(result: Any, stage: str) -> Any:
    return next(r for r in result.reports if r.stage == stage)


def test_validation_counts_unknown_fields_and_drops_bad_versions() -> None:
    res = clean_events(
        frame(
            [
                {"data": '{"url": "/a", "colour": "red", "mood": 1}'},
                {"schema_version": 99},
                {"event_type": "custom.thing", "data": '{"x": 1}'},
            ]
        )
    )
    r = report(res, "validate")
    assert (r.rows_in, r.rows_out) == (3, 2)
    assert r.removed == {"unsupported schema_version": 1}
    assert r.notes["unknown data fields"] == 2


def test_exact_and_near_duplicates() -> None:
    rows = [
        {"event_type": "click", "item_id": "a", "ts_ms": 1000, "data": '{"item_id": "a"}'},
        {"event_type": "click", "item_id": "a", "ts_ms": 1500},  # double-fired: dropped
        {"event_type": "click", "item_id": "a", "ts_ms": 2600},  # 1.1 s later: kept
        {"event_type": "click", "item_id": "b", "ts_ms": 1600},  # other item: kept
        {"event_type": "page_load", "ts_ms": 1700},  # no item: never a near duplicate
        {"event_type": "page_load", "ts_ms": 1800},
    ]
    df = pl.concat([frame(rows), frame(rows[:1])])  # the first event twice (same event_id)
    res = clean_events(df)
    r = report(res, "dedupe")
    assert r.removed == {"same event_id": 1, "same user, type and item within 1000 ms": 1}
    assert res.events.height == 5


def test_bots_are_flagged_on_live_traffic_only_and_outliers_dropped() -> None:
    burst = [{"user_key": "bot", "ts_ms": i * 100} for i in range(150)]  # 150 events in 15 s
    imported = [{"user_key": "hist", "ts_ms": i * 100, "source": "import"} for i in range(150)]
    normal = [{"user_key": "human", "ts_ms": i * MIN} for i in range(10)]
    long_view = [{"user_key": "human", "ts_ms": 20 * MIN, "data": '{"duration_ms": 18000000}'}]
    res = clean_events(frame(burst + imported + normal + long_view))
    assert res.flagged_users == {"bot"}
    r = report(res, "bots and outliers")
    assert r.removed == {"dwell above 240 min": 1}
    training = res.training_events()
    assert "bot" not in set(training.get_column("user_key").to_list())
    assert res.events.filter(pl.col("user_key") == "bot").height == 150  # kept, not deleted


def test_sessionization_by_inactivity_and_cap() -> None:
    rows = [
        {"ts_ms": 0},
        {"ts_ms": 10 * MIN},
        {"ts_ms": 39 * MIN},  # one session (gaps < 30 min)
        {"ts_ms": 80 * MIN},  # 41 min gap: new session
        {"ts_ms": 0, "user_key": "v", "session_id": "client-1"},
        {"ts_ms": 25 * 60 * MIN, "user_key": "v", "session_id": "client-1"},  # 25 h later: cut
    ]
    res = clean_events(frame(rows))
    sessions = res.events.sort("user_key", "ts_ms").get_column("session").to_list()
    assert sessions[0] == sessions[1] == sessions[2] != sessions[3]
    assert sessions[4].startswith("c:client-1/") and sessions[4] != sessions[5]
    assert report(res, "sessionize").notes["sessions"] == 4


def test_missing_values_policy() -> None:
    res = clean_events(
        frame(
            [
                {"event_type": "rating", "item_id": None, "data": '{"value": 4}'},
                {"context": '{"device_type": "mobile"}', "data": '{"duration_ms": 1200}'},
                {"ts_ms": 5},
            ]
        )
    )
    assert report(res, "missing values").removed == {"item event without item_id": 1}
    ev = res.events.sort("ts_ms")
    assert ev.get_column("device_type").to_list() == ["mobile", "unknown"]
    assert ev.get_column("duration_ms").to_list() == [1200.0, None]


def test_interaction_weights_and_decay() -> None:
    day = 86_400_000
    events = frame(
        [
            {"event_type": "page_view", "item_id": "a", "ts_ms": 10 * day},
            {"event_type": "click", "item_id": "a", "ts_ms": 10 * day},
            {
                "event_type": "content_engagement",
                "item_id": "b",
                "ts_ms": 10 * day,
                "data": '{"time_spent_ms": 240000}',
            },
            {"event_type": "rating", "item_id": "c", "ts_ms": 10 * day, "data": '{"value": 4}'},
            {
                "event_type": "interaction",
                "item_id": "d",
                "ts_ms": 10 * day,
                "data": '{"weight": 7}',
            },
            {"event_type": "conversion", "item_id": "e", "ts_ms": 10 * day},
            {
                "event_type": "feedback",
                "item_id": "f",
                "ts_ms": 10 * day,
                "data": '{"kind": "dislike"}',
            },
            {"event_type": "search", "ts_ms": 10 * day},
        ]
    )
    it = build_interactions(events, as_of_ms=10 * day)
    w = dict(zip(it.pairs.get_column("item_id"), it.pairs.get_column("weight"), strict=True))
    assert w == {"a": 3.0, "b": 3.0, "c": 4.0, "d": 7.0, "e": 5.0}
    assert it.matrix.shape == (1, 5) and it.items.ids == ["a", "b", "c", "d", "e"]
    decayed = build_interactions(events, InteractionConfig(half_life_days=5), as_of_ms=15 * day)
    assert decayed.pairs.filter(pl.col("item_id") == "c").get_column("weight").item() == 2.0


def test_temporal_split_by_hand() -> None:
    df = pl.DataFrame(
        {
            "user_key": ["a"] * 10 + ["b"] * 4,
            "item_id": [str(i) for i in range(14)],
            "ts_ms": [9, 1, 8, 2, 7, 3, 6, 4, 5, 10, 1, 2, 3, 4],
        }
    )
    train, test = temporal_user_split(df)
    assert sorted(test.get_column("ts_ms").to_list()) == [9, 10]  # 20 % of 10 = 2 newest
    assert train.filter(pl.col("user_key") == "b").height == 4  # fewer than 5: all train


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.sampled_from("abcdef"), st.integers(0, 50)), min_size=1, max_size=80))
def test_temporal_split_properties(rows: list[tuple[str, int]]) -> None:
    df = pl.DataFrame(rows, schema={"user_key": pl.String, "ts_ms": pl.Int64}, orient="row")
    train, test = temporal_user_split(df)
    assert train.height + test.height == df.height
    for user in set(u for u, _ in rows):
        n = sum(1 for u, _ in rows if u == user)
        user_test = test.filter(pl.col("user_key") == user)
        expected = max(1, round(n * 0.2)) if n >= 5 else 0
        assert user_test.height == expected
        if expected:
            last_train = train.filter(pl.col("user_key") == user).get_column("ts_ms").max()
            assert last_train <= user_test.get_column("ts_ms").min()  # type: ignore[operator]


def test_pipeline_config_is_validated() -> None:
    with pytest.raises(ValueError):
        PipelineConfig(session_gap_ms=0)


def test_pipeline_configs_refuse_nonsense_and_name_the_field() -> None:
    """Issue 16, point 11: a typo or an impossible value nested in a feature build's config is
    refused, naming the field, instead of being silently ignored."""
    from pydantic import ValidationError

    from tastebud.features import FeatureBuildConfig
    from tastebud.pipeline import InteractionConfig, PipelineConfig

    with pytest.raises(ValidationError, match="near_duplicate_msec"):
        PipelineConfig(near_duplicate_msec=5)  # type: ignore[call-arg]
    with pytest.raises(ValidationError, match="like_weight"):
        InteractionConfig(like_weight=-1.0)
    with pytest.raises(ValidationError, match="half_life_days"):
        InteractionConfig(half_life_days=0)
    with pytest.raises(ValidationError, match="session_gap"):
        FeatureBuildConfig(pipeline={"session_gap": 60_000})  # type: ignore[arg-type]
    assert FeatureBuildConfig().pipeline == PipelineConfig()
