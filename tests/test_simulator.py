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


def _sha(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


def test_attributes_change_neither_the_events_nor_the_planted_truth() -> None:
    """Issue 15 gave users an age band and declared interests, drawn from a stream of their own:
    the events, catalogue and planted truth of a seed are byte for byte those recorded before
    (a NumPy that changed its random streams would need them recorded again)."""
    s = sim(chunk_users=50)
    buf = io.BytesIO()
    write_ndjson(s, buf, workers=1)
    assert _sha(buf.getvalue()) == (
        "1c07492da5d049c1076aba09d80fb3814525f72937e382057d5c6b3c753cca69"
    )
    truth = s.truth()
    for user in truth["users"].values():
        assert set(user) >= {"age_bucket", "declared_interests", "tastes"}
        del user["age_bucket"], user["declared_interests"]
    assert _sha(orjson.dumps(truth, option=orjson.OPT_SORT_KEYS)) == (
        "d578a717d62e12df8b2c916228f69eebdbb44021f316adc0e82faff23b47f9f7"
    )
    before = [
        {k: v for k, v in u.items() if k not in ("age_bucket", "interests")} for u in s.users()
    ]
    assert _sha(orjson.dumps(before, option=orjson.OPT_SORT_KEYS)) == (
        "5456a756842e4981e0b6c3afe94748c4cdb8d10d4a149429e07f135cca1edb32"
    )


def test_users_declare_an_age_band_and_imperfect_interests() -> None:
    from tastebud.catalog import UserIn
    from tastebud.simulator import AGE_BUCKETS

    s = sim(users=1000, days=5)
    users = list(s.users())
    assert users == list(sim(users=1000, days=5).users())  # deterministic per seed
    assert users != list(sim(users=1000, days=5, seed=12).users())
    truth = s.truth()["users"]
    ages = collections.Counter(u["age_bucket"] for u in users)
    assert set(ages) == set(AGE_BUCKETS) and ages["25-34"] > ages["65+"]
    for u in users:
        UserIn.model_validate({k: v for k, v in u.items() if k != "user_id"})
        assert set(u["interests"]) <= set(CATEGORIES)
        assert truth[u["user_id"]]["declared_interests"] == u["interests"]
    declared = [u for u in users if u["interests"]]
    assert 0.75 < len(declared) / len(users) < 0.95  # some skip the question
    top = {u["user_id"]: truth[u["user_id"]]["top_categories"] for u in users}
    # Declared interests follow the planted tastes...
    first_is_favourite = sum(u["interests"][0] in top[u["user_id"]][:2] for u in declared)
    assert first_is_favourite / len(declared) > 0.7
    # ...imperfectly: some declare a category they barely use, some forget a favourite.
    noise = sum(any(c not in top[u["user_id"]] for c in u["interests"]) for u in declared)
    forgot = sum(top[u["user_id"]][0] not in u["interests"] for u in declared)
    assert 0.1 < noise / len(declared) < 0.5 and forgot > 0.05 * len(declared)
