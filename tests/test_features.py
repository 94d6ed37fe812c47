"""Feature store: definitions, point-in-time snapshots, joins, statistics, real data."""

from __future__ import annotations

import json
import math
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from tastebud.config import Settings
from tastebud.errors import DataWarning, InvalidInput
from tastebud.features import (
    FEATURES,
    BrokenInvariant,
    FeatureBuildConfig,
    build_snapshot,
    item_features,
    snapshot_values,
    training_set,
)
from tastebud.features.definitions import feature
from tastebud.features.stats import DataProblems, check
from tastebud.services import Services, build_services
from tastebud.simulator import SimConfig, Simulator

from conftest import event

SEED_NAMES = {
    "total_sessions",
    "session_duration_avg",
    "pages_per_session",
    "bounce_rate",
    "return_frequency",
    "time_of_day_preference",
    "device_type_preference",
    "content_category_interests",
    "hour_of_day",
    "day_of_week",
    "is_weekend",
    "session_recency",
    "season",
    "click_through_rate",
    "conversion_rate",
    "error_rate",
    "search_frequency",
    "feature_adoption",
    "item_popularity_7d",
    "item_popularity_30d",
    "item_trend",
    "item_ctr",
    "item_category",
    "item_age_days",
}
DAY = 86_400_000


def test_every_named_feature_is_defined_once() -> None:
    names = [f.name for f in FEATURES]
    assert len(names) == len(set(names))
    assert SEED_NAMES <= set(names)
    for f in FEATURES:
        assert f.version >= 1 and f.description and f.owner
    with pytest.raises(KeyError):
        feature("nope")


def load_sim(services: Services, users: int = 150, days: int = 20, seed: int = 3) -> Simulator:
    sim = Simulator(SimConfig(users=users, items=200, days=days, seed=seed))
    outcome = services.catalog.put_items(list(sim.items()), 0)
    assert outcome.count("rejected") == 0
    events = list(sim.events())
    for i in range(0, len(events), 5000):
        services.ingestor.ingest(events[i : i + 5000], source="import")
    return sim


def test_snapshot_is_point_in_time(any_services: Services) -> None:
    services = any_services
    sim = load_sim(services)
    as_of = int(sim.config.start.timestamp() * 1000) + 10 * DAY
    first = build_snapshot(services.store, as_of_ms=as_of)
    before = snapshot_values(services.store, first.snapshot_id, "user")
    assert first.n_users > 50 and first.n_events < services.store.count_events()
    # Events after T (and a late one at T exactly) change nothing in a snapshot as of T.
    late = [
        event(
            "page_view", user="nb-user-0000001", timestamp=as_of / 1000, item_id="nb-item-000001"
        ),
        event(
            "click", user="nb-user-0000002", timestamp=as_of / 1000 + 3600, data={"element_id": "x"}
        ),
    ]
    assert services.ingestor.ingest(late).accepted == 2
    again = build_snapshot(services.store, as_of_ms=as_of)
    assert snapshot_values(services.store, again.snapshot_id, "user") == before
    assert snapshot_values(services.store, again.snapshot_id, "item") == snapshot_values(
        services.store, first.snapshot_id, "item"
    )


def test_partitioned_build_matches_single_pass(any_services: Services) -> None:
    services = any_services
    sim = load_sim(services, users=120, days=10)
    as_of = int(sim.config.start.timestamp() * 1000) + 11 * DAY
    one = build_snapshot(services.store, as_of_ms=as_of)
    many = build_snapshot(
        services.store, as_of_ms=as_of, config=FeatureBuildConfig(memory_budget_events=500)
    )
    assert (one.partitions, many.partitions) == (1, 16)
    a = snapshot_values(services.store, one.snapshot_id, "user")
    b = snapshot_values(services.store, many.snapshot_id, "user")
    assert a.keys() == b.keys()
    for key in a:
        for name, value in a[key].items():
            other = b[key][name]
            if isinstance(value, float):
                assert math.isclose(value, other, rel_tol=1e-9), (name, value, other)
            else:
                assert value == other, name


def test_training_set_joins_each_label_with_the_snapshot_valid_then(any_services: Services) -> None:
    services = any_services
    sim = load_sim(services, users=80, days=20)
    t0 = int(sim.config.start.timestamp() * 1000)
    s1 = build_snapshot(services.store, as_of_ms=t0 + 5 * DAY)
    s2 = build_snapshot(services.store, as_of_ms=t0 + 15 * DAY)
    v1 = snapshot_values(services.store, s1.snapshot_id, "user")
    v2 = snapshot_values(services.store, s2.snapshot_id, "user")
    user = next(k for k in v1 if v1[k]["total_sessions"] != v2.get(k, {}).get("total_sessions"))
    labels = pl.DataFrame(
        {
            "user_key": [user, user, user, user],
            "as_of_ms": [t0 + 1 * DAY, t0 + 6 * DAY, t0 + 15 * DAY, t0 + 19 * DAY],
            "label": [0, 1, 0, 1],
        }
    )
    joined = training_set(services.store, labels)
    assert joined.get_column("snapshot_id").to_list() == [
        None,
        s1.snapshot_id,
        s2.snapshot_id,
        s2.snapshot_id,
    ]
    sessions = joined.get_column("total_sessions").to_list()
    assert sessions == [
        None,
        v1[user]["total_sessions"],
        v2[user]["total_sessions"],
        v2[user]["total_sessions"],
    ]
    assert joined.get_column("label").to_list() == [0, 1, 0, 1]


def test_snapshot_records_versions_window_and_statistics(any_services: Services) -> None:
    services = any_services
    sim = load_sim(services, users=60, days=8)
    result = build_snapshot(
        services.store, as_of_ms=int(sim.config.start.timestamp() * 1000) + 9 * DAY
    )
    from tastebud.features import latest_snapshot

    snap = latest_snapshot(services.store)
    assert snap is not None and snap["id"] == result.snapshot_id
    assert snap["feature_versions"]["total_sessions"] == 1
    assert snap["window_start_ms"] <= snap["window_end_ms"] < snap["as_of_ms"]
    stats = snap["stats"]
    assert set(stats) == {f.name for f in FEATURES}
    sessions = stats["total_sessions"]
    assert sessions["null_rate"] == 0.0 and sessions["min"] >= 1
    assert set(sessions["quantiles"]) == {"p5", "p25", "p50", "p75", "p95"}
    assert sum(sessions["histogram"]["counts"]) == result.n_users
    assert 0 <= stats["bounce_rate"]["max"] <= 1
    assert stats["device_type_preference"]["top"]
    assert {r["stage"] for r in snap["reports"]} >= {"validate", "dedupe", "sessionize"}
    context = snapshot_values(services.store, result.snapshot_id, "context")["as_of"]
    assert context["season"] == "winter" and isinstance(context["is_weekend"], bool)


def test_checks_warn_and_fail() -> None:
    defs = {f.name: f for f in FEATURES}
    base = {"count": 10, "null_rate": 0.0, "min": 0.0, "max": 1.0, "mean": 0.5}
    assert check({"bounce_rate": base}, defs, None) == []
    warnings = check({"bounce_rate": {**base, "max": 1.5}}, defs, None)
    assert warnings and "outside [0, 1]" in warnings[0]
    all_null = {"count": 10, "null_rate": 1.0}
    warnings = check({"error_rate": all_null}, defs, {"error_rate": {"null_rate": 0.1}})
    assert warnings and "all null" in warnings[0]
    with pytest.raises(BrokenInvariant, match="total_sessions"):
        check({"total_sessions": {**base, "min": -1.0}}, defs, None)
    assert issubclass(BrokenInvariant, InvalidInput)


def test_planted_tastes_become_top_interests(services: Services) -> None:
    sim = load_sim(services, users=200, days=30, seed=9)
    result = build_snapshot(
        services.store, as_of_ms=int(sim.config.start.timestamp() * 1000) + 31 * DAY
    )
    values = snapshot_values(services.store, result.snapshot_id, "user")
    truth = sim.truth()["users"]
    hits = total = 0
    for raw_id, planted in truth.items():
        got = values.get(services.pseudonymizer.user(raw_id), {}).get("content_category_interests")
        if not got or planted["sessions_per_day"] * 30 < 5:
            continue
        total += 1
        hits += got[0] in planted["top_categories"][:2]
    assert total > 100
    assert hits / total > 0.8, hits / total


@pytest.mark.slow
def test_movielens_interests_are_genres(services: Services, movielens: Path) -> None:
    ml = movielens
    from tastebud.importers import import_movielens

    import_movielens(ml, services.ingestor, services.catalog, services.pseudonymizer)
    result = build_snapshot(services.store, as_of_ms=900_000_000_000)
    values = snapshot_values(services.store, result.snapshot_id, "user")
    assert result.n_users == 943
    genres = {line.split("|")[0] for line in (ml / "u.genre").read_text().splitlines() if line}
    user = values[services.pseudonymizer.user("1")]
    assert set(user["content_category_interests"]) <= genres
    # User 1's top genre is the genre of most of the rating weight they gave.
    weight: Counter[str] = Counter()
    items = {
        line.split("|")[0]: line.split("|")
        for line in (ml / "u.item").read_text(encoding="latin-1").splitlines()
    }
    order = [
        g
        for g, _ in sorted(
            (line.split("|") for line in (ml / "u.genre").read_text().splitlines() if line),
            key=lambda p: int(p[1]),
        )
    ]
    for line in (ml / "u.data").read_text().splitlines():
        u, i, r, _ = line.split("\t")
        if u == "1":
            for g, flag in zip(order, items[i][5:], strict=False):
                if flag == "1":
                    weight[g] += int(r)
    assert user["content_category_interests"][0] == weight.most_common(1)[0][0]
    assert json.dumps(user)  # JSON-serializable as stored


# -- data problems are DataWarnings (issue 16, point 11) ---------------------------------------
T0 = 1_790_000_000_000  # 2026-09-21, a Monday
USER_A, USER_B, USER_C = "a" * 32, "b" * 32, "c" * 32  # one per partition of a 16-range build


def raw_event(
    n: int,
    event_type: str,
    user: str,
    *,
    item: str | None = None,
    data: dict[str, Any] | None = None,
    version: int = 1,
) -> dict[str, Any]:
    """A stored event row, written past ingest's validation (as an old or imported row may be)."""
    ts = T0 + n * 10_000
    return {
        "event_id": f"e-{n}",
        "event_type": event_type,
        "user_key": user,
        "item_id": item,
        "ts_ms": ts,
        "received_ms": ts,
        "source": "import",
        "schema_version": version,
        "data": data or {},
        "context": {"device_type": "desktop"},
    }


def clean_rows() -> list[dict[str, Any]]:
    return [
        raw_event(1, "page_view", USER_A, item="i-1"),
        raw_event(2, "page_view", USER_A, item="i-2"),
        raw_event(3, "click", USER_A, item="i-1", data={"element_id": "more"}),
        raw_event(4, "feature_usage", USER_A, data={"feature": "search"}),
        raw_event(5, "page_view", USER_B, item="i-2"),
        raw_event(6, "impression", USER_C, data={"item_ids": ["i-1", "i-2"]}),
        raw_event(7, "page_view", USER_C, item="i-1"),
    ]


def bad_rows() -> list[dict[str, Any]]:
    dup = raw_event(20, "page_view", USER_C, item="i-1")
    return [
        raw_event(10, "page_view", USER_A, item="ghost"),  # not in the catalogue
        *(raw_event(n, "click", USER_B, item="i-2") for n in (11, 12, 13)),  # 3 clicks, 1 view
        raw_event(14, "impression", USER_C),  # no item_ids
        raw_event(15, "feature_usage", USER_C),  # no feature
        raw_event(16, "rating", USER_C, data={"value": 4}),  # an item event without its item
        raw_event(17, "page_view", USER_A, item="i-1", version=99),  # unsupported version
        dup,
        {**dup, "event_id": "e-20-again", "ts_ms": dup["ts_ms"] + 300},  # double-fired
    ]


def load_rows(services: Services, rows: list[dict[str, Any]]) -> None:
    items = [
        {"item_id": f"i-{n}", "categories": ["news"], "created_at": "2026-01-01T00:00:00Z"}
        for n in (1, 2)
    ]
    assert services.catalog.put_items(items, 0).count("rejected") == 0
    services.store.insert_events(rows)


def test_clean_data_builds_without_a_data_warning(services: Services) -> None:
    load_rows(services, clean_rows())
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataWarning)
        result = build_snapshot(services.store, as_of_ms=T0 + DAY)
    assert result.warnings == [] and result.n_users == 3


def test_data_problems_warn_once_each_with_their_count(services: Services) -> None:
    load_rows(services, clean_rows() + bad_rows())
    with pytest.warns(DataWarning) as record:
        result = build_snapshot(services.store, as_of_ms=T0 + DAY)
    messages = [str(w.message) for w in record if w.category is DataWarning]
    assert messages == result.warnings
    assert {w.filename for w in record} == {__file__}  # points at the caller, not at Tastebud
    expected = [
        "1 feature_usage events without a feature name",
        "1 interaction events on items missing from the catalogue",
        "1 users with more clicks than impressions",
        "1 impression events without a readable item_ids list",
        "1 items with events in the last 30 days are missing from the catalogue",
        "1 items with more clicks than impressions",
        "1 events dropped by cleaning (validate): unsupported schema_version",
        "1 events dropped by cleaning (missing values): item event without item_id",
    ]
    assert len(messages) == len(expected), messages
    for start in expected:
        assert sum(m.startswith(start) for m in messages) == 1, (start, messages)
    assert not any("dedupe" in m for m in messages)  # a double-fired event is routine

    # Partitioned (each user in a range of their own): the same problems, counted once each.
    with pytest.warns(DataWarning):
        many = build_snapshot(
            services.store,
            as_of_ms=T0 + DAY,
            config=FeatureBuildConfig(memory_budget_events=2),
        )
    assert many.partitions == 16 and sorted(many.warnings) == sorted(result.warnings)


def test_an_empty_window_warns(services: Services) -> None:
    load_rows(services, clean_rows())
    with pytest.warns(DataWarning, match="no events before the snapshot time"):
        result = build_snapshot(services.store, as_of_ms=T0)
    assert result.n_users == 0


def test_feature_functions_warn_on_their_own() -> None:
    items = pl.DataFrame(
        {"item_id": ["i-1"], "category": ["news"], "created_ms": [T0 - 10 * DAY]},
        schema={"item_id": pl.String, "category": pl.String, "created_ms": pl.Int64},
    )
    events = pl.DataFrame(
        {
            "item_id": [None, "i-1", "i-1", "i-1"],
            "event_type": ["impression", "page_view", "click", "click"],
            "ts_ms": [T0, T0 + 1, T0 + 2, T0 + 3],
            "data": ['{"shown": []}', "{}", "{}", "{}"],
        }
    )
    with pytest.warns(DataWarning) as record:
        out = item_features(events, items, T0 + DAY)
    assert [str(w.message) for w in record] == [
        "1 impression events without a readable item_ids list (left out of item_ctr)",
        "1 items with more clicks than impressions (or page views, when never in a served "
        "list): item_ctr capped at 1",
    ]
    assert record[0].filename == __file__
    assert out.get_column("item_ctr").to_list() == [1.0]  # 2 clicks of 1 view, capped
    # Given a tally, they count instead (a build sums its partitions and warns once).
    problems = DataProblems()
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataWarning)
        item_features(events, items, T0 + DAY, problems=problems)
    assert len(problems.messages()) == 2


def test_statistics_checks_are_data_warnings_of_a_build(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    load_rows(services, clean_rows())
    import tastebud.features.build as build

    monkeypatch.setattr(build, "check", lambda *a: ["bounce_rate: a rate outside [0, 1]"])
    with pytest.warns(DataWarning, match=r"bounce_rate: a rate outside \[0, 1\]"):
        result = build_snapshot(services.store, as_of_ms=T0 + DAY)
    assert result.warnings == ["bounce_rate: a rate outside [0, 1]"]


def test_cli_prints_data_problems_as_warnings(settings: Settings) -> None:
    from test_cli import run

    services = build_services(settings, migrate=True)
    try:
        load_rows(services, clean_rows() + bad_rows())
    finally:
        services.close()
    r = run(["features", "build", "--as-of", "2026-09-23T00:00:00Z"], settings.data_dir)
    assert r.returncode == 0, r.stderr
    assert "warning: 1 events dropped by cleaning (missing values)" in r.stdout
    assert "warning: 1 interaction events on items missing from the catalogue" in r.stdout
    assert "Traceback" not in r.stderr


def test_the_build_config_refuses_nonsense() -> None:
    from pydantic import ValidationError

    from test_models import unbounded_fields

    assert not unbounded_fields(FeatureBuildConfig)
    with pytest.raises(ValidationError, match="memory_budget_events"):
        FeatureBuildConfig(memory_budget_events=0)
    with pytest.raises(ValidationError, match="budget"):  # a typo is refused, not ignored
        FeatureBuildConfig(budget=500)  # type: ignore[call-arg]
