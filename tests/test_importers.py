"""Importers: MovieLens 100K with exact counts, any interactions file, items and users."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tastebud.errors import InvalidInput
from tastebud.importers import (
    InteractionSpec,
    import_interactions,
    import_items,
    import_movielens,
    import_users,
)
from tastebud.services import Services

import conftest


@pytest.mark.slow
def test_movielens_exact_counts_and_idempotence(services: Services, movielens: Path) -> None:
    ml = movielens
    summary = import_movielens(ml, services.ingestor, services.catalog, services.pseudonymizer)
    assert (
        summary.line()
        == "100,000 events accepted, 0 duplicates, 0 rejected; 1,682 items; 943 users"
    )
    store = services.store
    assert store.count_events(event_type="rating") == 100_000
    assert services.catalog.items.count() == 1682 and services.catalog.users.count() == 943
    toy = services.catalog.items.get("1")
    assert toy is not None and toy["title"] == "Toy Story (1995)"
    assert toy["categories"] == ["Animation", "Children's", "Comedy"]
    assert toy["created_ms"] == 788918400000  # 01-Jan-1995
    user = services.catalog.users.get(services.pseudonymizer.user("1"))
    assert user is not None
    assert user["attributes"] == {
        "interests": [],
        "age_bucket": "18-24",
        "gender": "M",
        "occupation": "technician",
        "region": "zip-8",
    }
    events = store.events_for_user(services.pseudonymizer.user("196"))
    assert len(events) == 39
    assert {e["data"]["value"] for e in events} <= {1.0, 2.0, 3.0, 4.0, 5.0}
    # Event ids are keyed digests (ml-<32 hex>), never the raw "user item time" they stand for
    # (a plain substring check would flake: a hex digest contains "196" now and then).
    assert all(e["source"] == "import" for e in events)
    assert all(re.fullmatch(r"ml-[0-9a-f]{32}", e["event_id"]) for e in events)
    again = import_movielens(ml, services.ingestor, services.catalog, services.pseudonymizer)
    assert (again.accepted, again.duplicates) == (0, 100_000)
    assert store.count_events() == 100_000


def test_movielens_directory_must_look_right(services: Services, tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="u.data"):
        import_movielens(tmp_path, services.ingestor, services.catalog, services.pseudonymizer)


def run(services: Services, path: Path, **spec: object) -> object:
    return import_interactions(
        path,
        InteractionSpec(**spec),  # type: ignore[arg-type]
        services.ingestor,
        services.pseudonymizer,
    )


def test_movielens_latest_style_csv_with_bad_rows(services: Services, tmp_path: Path) -> None:
    f = tmp_path / "ratings.csv"
    f.write_text(
        "userId,movieId,rating,timestamp\n"
        "1,31,2.5,1260759144\n"
        "1,1029,3.0,1260759179\n"
        "2,10,four,1260759200\n"  # bad rating
        "2,17\n"  # too few fields
        "3,60,3.0,yesterday\n"  # bad time
        "\n"
        "3,61,5.0,1260759300000\n"  # milliseconds
    )
    s = run(
        services,
        f,
        user="userId",
        item="movieId",
        time="timestamp",
        weight="rating",
        event_type="rating",
    )
    assert s.line() == "3 events accepted, 0 duplicates, 3 rejected"  # type: ignore[attr-defined]
    lines = s.lines  # type: ignore[attr-defined]
    assert lines == {
        "weight 'four' is not a number": [4],
        "expected at least 4 fields, got 2": [5],
        "time 'yesterday' is not a auto time": [6],
    }
    user3 = services.store.events_for_user(services.pseudonymizer.user("3"))
    assert [e["ts_ms"] for e in user3] == [1260759300000]
    assert user3[0]["data"] == {"value": 5.0}


def test_lastfm_style_tsv_without_time_keeps_order_and_weight(
    services: Services, tmp_path: Path
) -> None:
    f = tmp_path / "user_artists.dat"
    f.write_text("userID\tartistID\tweight\n2\t51\t13883\n2\t52\t11690\n3\t51\t7\n")
    s = run(services, f, user="userID", item="artistID", weight="weight")
    assert s.accepted == 3  # type: ignore[attr-defined]
    events = services.store.events_for_user(services.pseudonymizer.user("2"))
    assert [e["item_id"] for e in events] == ["51", "52"]
    assert [e["data"]["weight"] for e in events] == [13883.0, 11690.0]
    assert events[0]["ts_ms"] < events[1]["ts_ms"]
    again = run(services, f, user="userID", item="artistID", weight="weight")
    assert again.duplicates == 3  # type: ignore[attr-defined]


def test_headerless_file_by_column_number(services: Services, tmp_path: Path) -> None:
    f = tmp_path / "u.data"
    f.write_text("196\t242\t3\t881250949\n186\t302\t3\t891717742\n")
    s = run(services, f, user="1", item="2", weight="3", time="4", event_type="rating")
    assert s.accepted == 2  # type: ignore[attr-defined]
    f2 = tmp_path / "plays.txt"
    f2.write_text("u1 i1\nu1 i2\n")  # whitespace-separated, no weight, no time
    s2 = run(services, f2, user="1", item="2")
    assert s2.accepted == 2  # type: ignore[attr-defined]


def test_iso_times_and_explicit_delimiter(services: Services, tmp_path: Path) -> None:
    f = tmp_path / "clicks.csv"
    f.write_text("who;what;when\nu9;x;2024-05-01T10:00:00+02:00\nu9;y;2024-05-01 09:00:00\n")
    s = run(
        services,
        f,
        user="who",
        item="what",
        time="when",
        delimiter=";",
        time_format="iso",
        event_type="click",
    )
    assert s.accepted == 2  # type: ignore[attr-defined]
    events = services.store.events_for_user(services.pseudonymizer.user("u9"))
    assert [e["ts_ms"] for e in events] == [1714550400000, 1714554000000]  # naive = UTC


def test_interaction_spec_errors(services: Services, tmp_path: Path) -> None:
    f = tmp_path / "a.csv"
    f.write_text("user,item\nu,i\n")
    with pytest.raises(InvalidInput, match="not a column; the header has: user, item"):
        run(services, f, user="uid", item="item")
    with pytest.raises(InvalidInput, match="needs --weight"):
        InteractionSpec(user="user", item="item", event_type="rating")
    with pytest.raises(InvalidInput, match="--type must be one of"):
        InteractionSpec(user="user", item="item", event_type="search")
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(InvalidInput, match="empty"):
        run(services, empty, user="1", item="2")


def test_items_and_users_from_csv_and_ndjson(services: Services, tmp_path: Path) -> None:
    items_csv = tmp_path / "items.csv"
    items_csv.write_text(
        "item_id,title,categories,type,created_at,hidden,price\n"
        "a1,Router guide,networking|howto,article,2025-01-01T00:00:00Z,false,0\n"
        "a2,Old,networking,article,not-a-date,true,1.5\n"
        ",No id,,,,,\n"
    )
    s = import_items(items_csv, services.catalog)
    assert s.line() == "1 items (1 created, 0 updated), 2 rejected"
    assert [n for n, _ in s.rejected] == [3, 4]
    a1 = services.catalog.items.get("a1")
    assert a1 is not None and a1["categories"] == ["networking", "howto"]
    assert a1["attributes"] == {"price": 0} and a1["hidden"] is False
    items_nd = tmp_path / "items.ndjson"
    items_nd.write_text(
        json.dumps({"item_id": "a1", "title": "New"})
        + "\nnot json\n"
        + json.dumps({"item_id": "b", "categories": ["x"]})
        + "\n"
    )
    s = import_items(items_nd, services.catalog)
    assert (s.created, s.updated, s.rejected) == (1, 1, [(2, "not a JSON object")])

    users_csv = tmp_path / "users.csv"
    users_csv.write_text(
        "user_id,skill_level,interests,email,plan\n"
        "u1,expert,vpn|wifi,u1@example.com,pro\nu2,wizard,,,\n"
    )
    s = import_users(users_csv, services.catalog)
    assert (s.created, len(s.rejected)) == (1, 1) and "skill_level" in s.rejected[0][1]
    u1 = services.catalog.users.get(services.pseudonymizer.user("u1"))
    assert u1 is not None
    assert u1["attributes"]["interests"] == ["vpn", "wifi"] and u1["attributes"]["plan"] == "pro"
    assert set(u1["attributes"]["email"]) == {"$enc"}  # the same policy as events


def test_missing_shared_data_skips_here_and_fails_in_ci(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The one guard (conftest.unavailable) for data beside the checkout: a laptop without
    ../shared/data skips, CI (CI or TASTEBUD_REQUIRE_SERVICES=1) fails."""
    monkeypatch.setattr(conftest, "SHARED_DATA", tmp_path / "nothing-here")
    monkeypatch.setattr(conftest, "REQUIRE_SERVICES", False)
    with pytest.raises(pytest.skip.Exception, match="nothing-here"):
        conftest.need_movielens()
    monkeypatch.setattr(conftest, "REQUIRE_SERVICES", True)
    with pytest.raises(pytest.fail.Exception, match="required in CI"):
        conftest.need_movielens()
    (tmp_path / "nothing-here" / "ml-100k").mkdir(parents=True)
    (tmp_path / "nothing-here" / "ml-100k" / "u.data").write_text("1\t1\t5\t0\n")
    assert conftest.need_movielens() == tmp_path / "nothing-here" / "ml-100k"
