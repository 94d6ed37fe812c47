"""The NetworkBuster traffic simulator: deterministic, valid, and carrying its planted truth."""

from __future__ import annotations

import collections
import io
from datetime import UTC, datetime

import orjson

from tastebud.events.schema import validate_event
from tastebud.simulator import CATEGORIES, SimConfig, Simulator, write_ndjson


def sim(**kw: object) -> Simulator:
    return Simulator(SimConfig(**{"users": 200, "items": 300, "days": 14, "seed": 11, **kw}))  # type: ignore[arg-type]


def test_same_seed_same_output_whatever_the_workers() -> None:
    a, b = io.BytesIO(), io.BytesIO()
    cfg = {"chunk_users": 50}
    n1 = write_ndjson(sim(**cfg), a, workers=1)
    n2 = write_ndjson(sim(**cfg), b, workers=2)
    assert n1 == n2 > 1000
    assert a.getvalue() == b.getvalue()
    c = io.BytesIO()
    write_ndjson(sim(seed=12, **cfg), c, workers=1)
    assert c.getvalue() != a.getvalue()


def test_every_event_is_valid_and_every_kind_appears() -> None:
    events = list(sim().events())
    kinds = collections.Counter(e["event_type"] for e in events)
    for kind in (
        "page_view",
        "page_load",
        "click",
        "content_engagement",
        "rating",
        "search",
        "account",
        "network_quality",
        "feature_usage",
        "conversion",
        "error",
    ):
        assert kinds[kind] > 0, kind
    ids = set()
    for e in events:
        ev = validate_event(e)
        ids.add(ev.event_id)
        assert ev.timestamp < datetime(2026, 1, 16, tzinfo=UTC)
    assert len(ids) == len(events)


def test_planted_tastes_drive_behaviour() -> None:
    s = sim(users=300, days=30)
    truth = s.truth()
    assert set(truth["categories"]) == set(CATEGORIES)
    item_cat = {i["item_id"]: i["categories"][0] for i in s.items()}
    views: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    for e in s.events():
        if e["event_type"] == "page_view":
            views[e["user_id"]][item_cat[e["item_id"]]] += 1
    hits = total = 0
    for user, counts in views.items():
        if sum(counts.values()) < 15:
            continue
        total += 1
        hits += counts.most_common(1)[0][0] in truth["users"][user]["top_categories"][:2]
    assert total > 50
    assert hits / total > 0.8  # the most viewed category is one of the two planted favourites


def test_churned_users_stop() -> None:
    s = sim(users=400, days=30)
    truth = s.truth()["users"]
    last: dict[str, str] = {}
    for e in s.events():
        last[e["user_id"]] = max(last.get(e["user_id"], ""), e["timestamp"][:10])
    churned = [u for u, t in truth.items() if t["churned_on"] and u in last]
    assert churned
    for u in churned:
        # No session starts on or after the churn day; one started late the day before may
        # run past midnight.
        assert last[u] <= truth[u]["churned_on"]


def test_catalogue_and_users_are_importable() -> None:
    from tastebud.catalog import ItemBatchEntry, UserBatchEntry

    s = sim()
    items = list(s.items())
    users = list(s.users())
    assert len(items) == 300 and len(users) == 200
    for i in items:
        ItemBatchEntry.model_validate(i)
    for u in users:
        UserBatchEntry.model_validate(u)
    assert orjson.loads(orjson.dumps(s.truth()))["config"]["seed"] == 11
