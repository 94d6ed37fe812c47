"""The NetworkBuster traffic simulator: deterministic, valid, and carrying its planted truth,
which agrees with the traffic it generates."""

from __future__ import annotations

import collections
import io
from datetime import UTC, datetime

import numpy as np
import orjson
import polars as pl
import pytest

from tastebud.errors import InvalidInput
from tastebud.events.schema import validate_event
from tastebud.simulator import CATEGORIES, PlantedLabels, SimConfig, Simulator, write_ndjson


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


# -- the planted truth (issue 16, point 10: the simulator exposes it, labels know nothing of it) --
DAY = 86_400_000


def _auc(labels: list[int], scores: list[float]) -> float:
    pos = [s for y, s in zip(labels, scores, strict=True) if y == 1]
    neg = [s for y, s in zip(labels, scores, strict=True) if y == 0]
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def _ms(timestamp: str) -> int:
    return int(datetime.fromisoformat(timestamp).timestamp() * 1000)


def test_planted_labels() -> None:
    """What ``training.labels.simulator_truth_labels`` promised, now the simulator's own API."""
    s = Simulator(SimConfig(users=300, days=60, seed=1))
    truth = s.truth()
    start = int(s.config.start.timestamp() * 1000)
    as_of = start + 30 * DAY

    planted = s.planted_labels(as_of, "churn", window_days=30, activity_days=30)
    assert isinstance(planted, PlantedLabels)
    assert (planted.target, planted.as_of_ms, planted.window_days) == ("churn", as_of, 30)
    assert planted.labels is not None
    assert len(planted.user_ids) == len(planted.labels) == len(planted.scores)
    churn = planted.frame(str.upper)
    assert churn.schema == {
        "user_key": pl.String,
        "as_of_ms": pl.Int64,
        "truth_label": pl.Int8,
        "truth_score": pl.Float64,
    }
    assert churn.get_column("user_key").to_list()[0].startswith("NB-USER-")
    assert churn.get_column("user_key").is_sorted()
    assert 100 < churn.height < 300  # signed up before T and not yet gone 30 days before T
    rate = churn.get_column("truth_label").mean()
    assert isinstance(rate, float) and 0.2 < rate < 0.7
    # The planted hazard ranks who churns.
    assert _auc(churn["truth_label"].to_list(), churn["truth_score"].to_list()) > 0.75
    by_as_of = s.planted_labels(
        as_of, "churn", window_days=30, activity_days=30, churned_by="as_of"
    ).frame(str.upper)
    assert by_as_of.get_column("user_key").equals(churn.get_column("user_key"))
    assert 0 < by_as_of["truth_label"].sum() < churn["truth_label"].sum()
    assert (by_as_of["truth_label"] <= churn["truth_label"]).all()
    # Population by hand: signed up before T, churn day after T - 30 days.
    expected = {
        u.upper()
        for u, p in truth["users"].items()
        if p["signup"] < "2026-01-31"
        and (p["churned_on"] is None or p["churned_on"] > "2026-01-01")
    }
    assert set(churn.get_column("user_key")) == expected
    # A shorter activity span leaves out more of those already gone.
    short = s.planted_labels(as_of, "churn", window_days=30, activity_days=1)
    assert set(short.user_ids) < set(planted.user_ids)

    conversion = s.planted_labels(as_of, "conversion", window_days=7, activity_days=30)
    assert conversion.labels is None
    assert conversion.user_ids == planted.user_ids  # same population as churn
    frame = conversion.frame(str.upper)
    assert frame.get_column("truth_label").null_count() == frame.height
    scores = frame.get_column("truth_score")
    assert scores.min() >= 0.0 and scores.max() < 1.0  # type: ignore[operator]
    assert 0.05 < scores.mean() < 0.6  # type: ignore[operator]
    # Users who churned before T cannot convert after it.
    gone = churn.filter(
        pl.col("user_key").is_in(by_as_of.filter(pl.col("truth_label") == 1)["user_key"].implode())
    )
    assert frame.join(gone, on="user_key")["truth_score"].max() == 0.0
    assert s.planted_labels(as_of, "conversion", window_days=7, activity_days=30) == conversion

    with pytest.raises(InvalidInput, match="simulation ends 1.00 days"):
        s.planted_labels(start + 31 * DAY, "churn", window_days=30, activity_days=30)
    s.planted_labels(start + 53 * DAY, "conversion", window_days=7, activity_days=30)
    with pytest.raises(InvalidInput, match="churned_by"):
        s.planted_labels(as_of, "churn", window_days=30, activity_days=30, churned_by="x")  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="unknown target"):
        s.planted_labels(as_of, "retention", window_days=30, activity_days=30)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="at least 1"):
        s.planted_labels(as_of, "churn", window_days=0, activity_days=30)


def test_planted_conversion_agrees_with_the_traffic() -> None:
    """The planted probability of converting in a window is the one the events show: overall
    (within four standard deviations) and by quartile of the planted probability, for a window
    that starts and ends in the middle of a day."""
    s = Simulator(SimConfig(users=2000, items=300, days=40, seed=2))
    as_of = int(s.config.start.timestamp() * 1000) + 20 * DAY + 7 * 3_600_000 + 1234
    planted = s.planted_labels(as_of, "conversion", window_days=7, activity_days=30)
    converted = {
        e["user_id"]
        for e in s.events()
        if e["event_type"] == "conversion" and as_of <= _ms(e["timestamp"]) < as_of + 7 * DAY
    }
    # Every converter is in the population, except those who signed up after T.
    signup = {u: p["signup"] for u, p in s.truth()["users"].items()}
    late = converted - set(planted.user_ids)
    assert all(_ms(f"{signup[u]}T00:00:00+00:00") > as_of for u in late)
    assert len(late) < 0.1 * len(converted)
    y = np.array([u in converted for u in planted.user_ids], dtype=np.float64)
    p = np.array(planted.scores)
    assert abs(y.sum() - p.sum()) < 4 * np.sqrt((p * (1 - p)).sum())
    quartiles = np.array_split(np.argsort(p, kind="stable"), 4)
    rates = [float(y[q].mean()) for q in quartiles]
    for q, observed in zip(quartiles, rates, strict=True):
        assert abs(observed - float(p[q].mean())) < 0.05
    assert rates == sorted(rates) and rates[-1] > 3 * rates[1]
    assert _auc(y.astype(int).tolist(), p.tolist()) > 0.75


def test_planted_churn_agrees_with_the_traffic() -> None:
    """A user the simulator says has churned by ``T`` starts no session from ``T`` on (a session
    begun the evening before may run a little past it); one it says churns only after the window
    is still active in it more often than not."""
    s = Simulator(SimConfig(users=600, items=200, days=50, seed=5))
    as_of = int(s.config.start.timestamp() * 1000) + 15 * DAY + 5 * 3_600_000
    last: dict[str, int] = {}
    active_after: set[str] = set()
    for e in s.events():
        ts = _ms(e["timestamp"])
        last[e["user_id"]] = max(last.get(e["user_id"], 0), ts)
        if as_of <= ts < as_of + 30 * DAY:
            active_after.add(e["user_id"])
    by_as_of = s.planted_labels(
        as_of, "churn", window_days=30, activity_days=30, churned_by="as_of"
    )
    by_end = s.planted_labels(as_of, "churn", window_days=30, activity_days=30)
    assert by_as_of.labels is not None and by_end.labels is not None
    gone = [u for u, y in zip(by_as_of.user_ids, by_as_of.labels, strict=True) if y]
    assert len(gone) > 20
    assert all(last.get(u, 0) < as_of + 3 * 3_600_000 for u in gone)
    stays = [u for u, y in zip(by_end.user_ids, by_end.labels, strict=True) if not y]
    assert len(stays) > 100
    assert sum(u in active_after for u in stays) / len(stays) > 0.8
