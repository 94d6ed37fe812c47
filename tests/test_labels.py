"""Behaviour labels (issue 6, item 1): window edges, targets, unobserved windows, stacked
training sets with point-in-time snapshots, agreement with the simulator's planted truth, and
no simulator knowledge in the labels (issue 16, point 10)."""

from __future__ import annotations

import ast
import tomllib
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from sqlalchemy import text

from tastebud import training
from tastebud.config import Settings
from tastebud.errors import InvalidInput
from tastebud.features import list_snapshots, snapshot_values
from tastebud.services import Services, build_services
from tastebud.simulator import SimConfig, Simulator
from tastebud.training import labels as labels_module
from tastebud.training.labels import (
    KEY_COLUMNS,
    LabelWindows,
    default_as_of_times,
    event_labels,
    event_training_set,
)

from conftest import event

DAY = 86_400_000
T = int(datetime(2026, 6, 1, tzinfo=UTC).timestamp() * 1000)


def at(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="milliseconds")


def put(services: Services, rows: list[tuple[str, int, str]]) -> None:
    """Ingest (user, time in ms, event type) through the real ingest path."""
    events = []
    for user, ms, kind in rows:
        extra: dict[str, Any] = {"data": {"goal": "trial_start"}} if kind == "conversion" else {}
        events.append(event(kind, user=user, timestamp=at(ms), **extra))
    assert services.ingestor.ingest(events).accepted == len(events)
    with services.store.engine.connect() as conn:
        stored = set(conn.execute(text("SELECT ts_ms FROM events")).scalars())
    assert {ms for _, ms, _ in rows} <= stored  # millisecond times survive ingestion exactly


def labels_by_user(services: Services, frame: pl.DataFrame) -> dict[str, int]:
    keys = {services.pseudonymizer.user(f"u-{n}"): f"u-{n}" for n in range(20)}
    return {keys[k]: v for k, v in frame.select("user_key", "label").iter_rows()}


def test_churn_window_edges(any_services: Services) -> None:
    services = any_services
    put(
        services,
        [
            ("u-0", T - 30 * DAY, "page_view"),  # exactly at T - 30 d: active; gone: churned
            ("u-1", T - 30 * DAY - 1, "page_view"),  # 1 ms too early: not active, no label
            ("u-2", T - DAY, "page_view"),
            ("u-2", T, "page_view"),  # exactly at T: counts as after, stays
            ("u-3", T - DAY, "page_view"),
            ("u-3", T + 30 * DAY - 1, "page_view"),  # last ms of the window: stays
            ("u-4", T - 1, "page_view"),
            ("u-4", T + 30 * DAY, "page_view"),  # exactly at T + 30 d: too late, churned
            ("u-5", T, "page_view"),  # first seen at T: not active before T
        ],
    )
    labels = event_labels(services.store, "churn", [T])
    assert labels.schema == {"user_key": pl.String, "as_of_ms": pl.Int64, "label": pl.Int8}
    assert labels.get_column("as_of_ms").to_list() == [T] * 4
    assert labels_by_user(services, labels) == {"u-0": 1, "u-2": 0, "u-3": 0, "u-4": 1}
    # A shorter activity window shrinks the population; the future window is unchanged.
    short = event_labels(services.store, "churn", [T], LabelWindows(activity_days=1))
    assert labels_by_user(services, short) == {"u-2": 0, "u-3": 0, "u-4": 1}


def test_conversion_window_edges_and_population(services: Services) -> None:
    put(
        services,
        [
            ("u-0", T - DAY, "page_view"),
            ("u-0", T, "conversion"),  # exactly at T: converts
            ("u-1", T - DAY, "page_view"),
            ("u-1", T + 7 * DAY - 1, "conversion"),  # last ms of the 7 days: converts
            ("u-2", T - DAY, "page_view"),
            ("u-2", T + 7 * DAY, "conversion"),  # exactly at T + 7 d: too late
            ("u-3", T - 1, "conversion"),  # converted before T: not a label of T
            ("u-4", T - DAY, "page_view"),
            ("u-4", T + DAY, "page_view"),  # active after T, but no conversion
            ("u-5", T + DAY, "conversion"),  # not active before T: no label
            ("u-9", T + 8 * DAY, "page_view"),  # not active; observes 8 days after T
        ],
    )
    labels = event_labels(services.store, "conversion", [T])
    assert labels_by_user(services, labels) == {"u-0": 1, "u-1": 1, "u-2": 0, "u-3": 0, "u-4": 0}
    # Same store, churn: same population, other outcome (u-3 has no event from T on).
    churn = event_labels(services.store, "churn", [T], LabelWindows(churn_days=7))
    assert labels_by_user(services, churn) == {"u-0": 0, "u-1": 0, "u-2": 1, "u-3": 1, "u-4": 0}
    # A configurable window: with 8 days, u-2's conversion counts.
    longer = event_labels(services.store, "conversion", [T], LabelWindows(conversion_days=8))
    assert labels_by_user(services, longer)["u-2"] == 1


def test_unobserved_future_window_is_rejected(services: Services) -> None:
    put(services, [("u-0", T - DAY, "page_view"), ("u-0", T + 7 * DAY, "page_view")])
    # The window [T, T + 7 d) ends exactly at the latest event: observed.
    assert event_labels(services.store, "conversion", [T]).height == 1
    with pytest.raises(InvalidInput, match="1 ms short"):
        event_labels(services.store, "conversion", [T + 1])
    with pytest.raises(InvalidInput, match=r"23\.00 days short"):
        event_labels(services.store, "churn", [T - 5 * DAY, T])
    with pytest.raises(InvalidInput, match="no as-of time"):
        event_labels(services.store, "churn", [])
    with pytest.raises(InvalidInput, match="unknown target"):
        event_labels(services.store, "retention", [T])  # type: ignore[arg-type]


def test_empty_store_and_default_as_of_times(services: Services) -> None:
    with pytest.raises(InvalidInput, match="no events"):
        event_labels(services.store, "churn", [T])
    with pytest.raises(InvalidInput, match="no events"):
        default_as_of_times(services.store, "churn")
    first, last = T - 40 * DAY, T + 30 * DAY + 123
    put(services, [("u-0", first, "page_view"), ("u-1", last, "page_view")])
    times = default_as_of_times(services.store, "churn")
    assert times == [T + 123 - k * 7 * DAY for k in (3, 2, 1, 0)]
    assert default_as_of_times(services.store, "conversion", count=2, step_days=1) == [
        last - 8 * DAY,
        last - 7 * DAY,
    ]
    event_labels(services.store, "churn", times)  # the latest is still fully observed
    with pytest.raises(InvalidInput, match="span 70.00 days"):
        default_as_of_times(services.store, "churn", count=7, step_days=7)
    with pytest.raises(InvalidInput, match="at least 1"):
        default_as_of_times(services.store, "churn", count=0)


def _load_sim(services: Services, sim: Simulator, late: list[dict[str, Any]] | None = None) -> None:
    assert services.catalog.put_items(list(sim.items()), 0).count("rejected") == 0
    events = list(sim.events())
    for i in range(0, len(events), 5000):
        services.ingestor.ingest(events[i : i + 5000], source="import")
    if late:
        assert services.ingestor.ingest(late).accepted == len(late)


@pytest.fixture
def second_services(make_settings: Callable[..., Settings], tmp_path: Path) -> Iterator[Services]:
    """Another store with the same pseudonym key (same user keys)."""
    svc = build_services(make_settings(database_url=f"sqlite:///{tmp_path / 'b.db'}"), migrate=True)
    yield svc
    svc.close()


def test_training_set_stacks_as_of_times_with_their_snapshots(
    services: Services, second_services: Services
) -> None:
    sim = Simulator(SimConfig(users=80, items=60, days=40, seed=2))
    _load_sim(services, sim)
    times = default_as_of_times(services.store, "churn", count=3, step_days=4)
    train = event_training_set(services.store, "churn", times)
    labels = event_labels(services.store, "churn", times)

    assert train.columns[:4] == list(KEY_COLUMNS)
    assert train.select("user_key", "as_of_ms", "label").equals(labels)
    assert 0 < train.get_column("label").mean() < 1  # type: ignore[operator]
    assert train.get_column("as_of_ms").unique().sort().to_list() == times
    # Flat columns only: numbers, booleans, strings; nested features flattened.
    for name, dtype in train.schema.items():
        assert dtype.is_numeric() or dtype in (pl.String, pl.Boolean), name
    for name in (
        "content_category_interests_count",
        "content_category_interests_top",
        "feature_adoption_total",
        "feature_adoption_distinct",
        "feature_adoption_top_share",
        "session_recency",
        "lifecycle_cohort",
    ):
        assert name in train.columns
    for nested in ("content_category_interests", "feature_adoption", "snapshot_as_of_ms"):
        assert nested not in train.columns

    # One snapshot per as-of time, built exactly at it, and each label joined with its own.
    snaps = {s["id"]: s["as_of_ms"] for s in list_snapshots(services.store)}
    assert sorted(snaps.values()) == times
    for t, ids in train.group_by("as_of_ms").agg(pl.col("snapshot_id").unique()).iter_rows():
        assert [snaps[i] for i in ids] == [t]
    row = train.filter(pl.col("as_of_ms") == times[1]).row(0, named=True)
    stored = snapshot_values(services.store, row["snapshot_id"], "user")[row["user_key"]]
    assert row["total_sessions"] == stored["total_sessions"]
    assert row["session_recency"] == stored["session_recency"]
    # Active users were seen less than 30 days before T: no feature says they already left.
    assert (train.get_column("session_recency") < 30 * 24).all()
    # Snapshots that exist are reused.
    event_training_set(services.store, "churn", times)
    assert len(list_snapshots(services.store)) == len(times)

    # The same events plus late ones, exactly at the latest T and after every window: no
    # feature changes; only the label of the user seen at T (an event at T is "after").
    gone = train.filter((pl.col("as_of_ms") == times[-1]) & (pl.col("label") == 1))
    target_user = gone.get_column("user_key")[0]
    raw_id = next(u for u in sim.truth()["users"] if services.pseudonymizer.user(u) == target_user)
    late = [
        event("page_view", user=raw_id, timestamp=at(times[-1]), item_id=sim.item_id(1)),
        event("page_view", user=sim.user_id(3), timestamp=at(times[-1] + 31 * DAY)),
        event("page_view", user="newcomer", timestamp=at(times[-1])),
    ]
    _load_sim(second_services, sim, late)
    again = event_training_set(second_services.store, "churn", times)
    assert again.drop("label").equals(train.drop("label"))
    changed = train.join(again, on=["user_key", "as_of_ms"]).filter(
        pl.col("label") != pl.col("label_right")
    )
    assert set(changed.get_column("user_key")) == {target_user}
    assert again.filter(
        (pl.col("user_key") == target_user) & (pl.col("as_of_ms") == times[-1])
    ).get_column("label").to_list() == [0]


def test_training_set_without_snapshots(services: Services) -> None:
    put(services, [("u-0", T - DAY, "page_view"), ("u-0", T + 30 * DAY, "page_view")])
    train = event_training_set(services.store, "churn", [T], build_missing=False)
    assert train.columns == list(KEY_COLUMNS)
    assert train.get_column("snapshot_id").to_list() == [None]
    assert list_snapshots(services.store) == []


def _auc(labels: list[int], scores: list[float]) -> float:
    pos = [s for y, s in zip(labels, scores, strict=True) if y == 1]
    neg = [s for y, s in zip(labels, scores, strict=True) if y == 0]
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def test_labels_hold_no_simulator_knowledge() -> None:
    """Issue 16, point 10: no test oracle in production code. Labels come from events alone; the
    planted truth is the simulator's (``Simulator.planted_labels``), with its constants."""
    source = Path(labels_module.__file__).read_text()
    tree = ast.parse(source)
    imported = {
        n.module if isinstance(n, ast.ImportFrom) else a.name
        for n in ast.walk(tree)
        if isinstance(n, ast.Import | ast.ImportFrom)
        for a in n.names
    }
    assert not any(m and m.startswith("tastebud.simulator") for m in imported)
    # Neither the planted parameters' names nor the conversion model's numbers.
    sim = Simulator(SimConfig(users=1, items=12, days=1))
    planted = set(next(iter(sim.truth()["users"].values()))) | set(sim.truth()["config"])
    constants = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant)}
    assert not constants & planted
    assert not constants & {5.2, 0.15, 0.4}  # intercept, exploration/page slope, skill slope
    assert "simulator_truth_labels" not in training.__all__
    # The import contract that keeps it so (checked by test_architecture's lint-imports run).
    contracts = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())["tool"][
        "importlinter"
    ]["contracts"]
    assert any(
        c["type"] == "forbidden"
        and "tastebud.simulator" in c["forbidden_modules"]
        and {"tastebud.training", "tastebud.training.labels"} & set(c["source_modules"])
        for c in contracts
    )


def test_event_labels_agree_with_planted_truth(services: Services) -> None:
    sim = Simulator(SimConfig(users=200, items=100, days=50, seed=4))
    _load_sim(services, sim)
    times = default_as_of_times(services.store, "churn", count=2)
    labels = event_labels(services.store, "churn", times)
    w = LabelWindows()
    for t in times:
        truth = sim.planted_labels(
            t, "churn", window_days=w.churn_days, activity_days=w.activity_days, churned_by="as_of"
        ).frame(services.pseudonymizer.user)
        mine = labels.filter(pl.col("as_of_ms") == t)
        joined = mine.join(truth, on=["user_key", "as_of_ms"])
        assert joined.height == mine.height  # every event-active user is in the planted population
        agree = (joined["label"] == joined["truth_label"]).mean()
        assert isinstance(agree, float) and agree > 0.85
    conversion_times = default_as_of_times(services.store, "conversion", count=1)
    conversions = event_labels(services.store, "conversion", conversion_times)
    planted = sim.planted_labels(
        conversion_times[0],
        "conversion",
        window_days=w.conversion_days,
        activity_days=w.activity_days,
    ).frame(services.pseudonymizer.user)
    joined = conversions.join(planted, on=["user_key", "as_of_ms"])
    assert joined.height == conversions.height
    assert _auc(joined["label"].to_list(), joined["truth_score"].to_list()) > 0.65
