"""Feature store: definitions, point-in-time snapshots, joins, statistics, real data."""

from __future__ import annotations

import json
import math
from collections import Counter

import polars as pl
import pytest

from tastebud.errors import InvalidInput
from tastebud.features import (
    FEATURES,
    BrokenInvariant,
    FeatureBuildConfig,
    build_snapshot,
    snapshot_values,
    training_set,
)
from tastebud.features.definitions import feature
from tastebud.features.stats import check
from tastebud.services import Services
from tastebud.simulator import SimConfig, Simulator

from conftest import SHARED_DATA, event

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
def test_movielens_interests_are_genres(services: Services) -> None:
    ml = SHARED_DATA / "ml-100k"
    if not (ml / "u.data").exists():
        pytest.skip("../shared/data/ml-100k is not here")
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
