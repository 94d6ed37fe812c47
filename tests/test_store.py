"""The store contract: one suite, run on SQLite and on the real PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from tastebud.apikeys import KeyManager
from tastebud.catalog import Items, Users
from tastebud.errors import Conflict, ServiceUnavailable, UnknownKey
from tastebud.privacy import ConsentLog
from tastebud.store import Store, current_revision, head_revision, make_engine
from tastebud.store.tables import metadata


def row(event_id: str, user: str = "u" * 32, **kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "event_id": event_id,
        "event_type": "click",
        "user_key": user,
        "anon_key": None,
        "session_id": "s1",
        "item_id": "i1",
        "ts_ms": 1_700_000_000_000,
        "received_ms": 1,
        "source": "api",
        "schema_version": 1,
        "data": {"element_id": "b"},
        "context": None,
    }
    base.update(kw)
    return base


@pytest.fixture
def store(db_url: str) -> Store:
    s = Store(make_engine(db_url))
    yield s
    s.dispose()


class TestStoreContract:
    def test_schema_is_at_head_and_matches_the_tables(self, store: Store) -> None:
        assert current_revision(store.engine) == head_revision()
        with store.engine.connect() as conn:
            diffs = compare_metadata(MigrationContext.configure(conn), metadata)
        assert diffs == []

    def test_insert_is_idempotent_on_event_id(self, store: Store) -> None:
        assert store.insert_events([row("a"), row("b")]) == {"a", "b"}
        assert store.insert_events([row("a"), row("c")]) == {"c"}
        assert store.count_events() == 3

    def test_json_round_trip_and_user_scan_order(self, store: Store) -> None:
        store.insert_events(
            [
                row("late", ts_ms=3, data={"q": "é ✓", "n": [1, 2.5]}),
                row("early", ts_ms=1, context={"device_type": "mobile"}),
                row("other", user="v" * 32),
            ]
        )
        events = store.events_for_user("u" * 32)
        assert [e["event_id"] for e in events] == ["early", "late"]
        assert events[1]["data"] == {"q": "é ✓", "n": [1, 2.5]}
        assert events[0]["context"] == {"device_type": "mobile"}
        assert store.count_events(user_key="v" * 32) == 1
        assert store.count_events(event_type="click") == 3

    def test_large_batch_in_one_transaction(self, store: Store) -> None:
        rows = [row(f"e{i}") for i in range(2500)]
        assert len(store.insert_events(rows)) == 2500
        assert store.count_events() == 2500

    def test_alias_merge_moves_anonymous_history_once(self, store: Store) -> None:
        anon, user = "a" * 32, "b" * 32
        store.insert_events(
            [row("x1", user=anon, anon_key=anon), row("x2", user=anon, anon_key=anon)]
        )
        assert store.merge_alias(anon, user, 10) == (2, True)
        assert store.merge_alias(anon, user, 11) == (0, False)
        assert store.count_events(user_key=user) == 2
        assert store.alias_targets([anon, "c" * 32]) == {anon: user}
        with pytest.raises(Conflict):
            store.merge_alias(anon, "d" * 32, 12)

    def test_users_put_get(self, store: Store) -> None:
        users = Users(store)
        assert users.get("k" * 32) is None
        assert users.put("k" * 32, {"segment": "pro"}, 5) is True
        assert users.put("k" * 32, {"segment": "free"}, 6) is False
        user = users.get("k" * 32)
        assert user is not None
        assert user["attributes"] == {"segment": "free"}
        assert (user["created_ms"], user["updated_ms"]) == (5, 6)

    def test_items_upsert_get_delete(self, store: Store) -> None:
        item = {
            "item_id": "m1",
            "title": "T",
            "category": "a",
            "categories": ["a"],
            "item_type": "video",
            "created_ms": None,
            "attributes": {"x": 1},
            "hidden": False,
            "updated_ms": 1,
        }
        items = Items(store)
        assert items.put([item]) == {"m1"}
        assert items.put([{**item, "title": "T2"}, {**item, "item_id": "m2"}]) == {"m2"}
        got = items.get("m1")
        assert got is not None and got["title"] == "T2" and got["hidden"] is False
        assert items.count() == 2
        assert items.delete("m1") is True
        assert items.delete("m1") is False
        assert items.get("m1") is None

    def test_item_categories(self, store: Store) -> None:
        item = {
            "item_id": "k1",
            "title": None,
            "category": "news",
            "categories": ["news"],
            "item_type": None,
            "created_ms": None,
            "attributes": {},
            "hidden": False,
            "updated_ms": 1,
        }
        items = Items(store)
        items.put([item, {**item, "item_id": "k2", "category": None}])
        ids = ["k1", "k2", "unknown"] + [f"many-{i}" for i in range(1000)]  # > one IN chunk
        got = items.categories(ids)
        assert got["k1"] == "news" and got["k2"] is None and got["unknown"] is None
        assert len(got) == len(ids) and items.categories(["k1"]) == {"k1": "news"}

    def test_consents_and_log(self, store: Store) -> None:
        key = "c" * 32
        consents = ConsentLog(store)
        consents.record(key, {"analytics": False}, 1)
        consents.record(key, {"analytics": True, "personalization": False}, 2)
        assert consents.decisions(key) == {"analytics": (True, 2), "personalization": (False, 2)}
        assert consents.states([key, "z" * 32], "personalization") == {key: False}
        from sqlalchemy import func, select

        from tastebud.store.tables import consent_log

        with store.engine.connect() as conn:
            assert conn.execute(select(func.count()).select_from(consent_log)).scalar_one() == 3

    def test_consent_cache_sees_changes_made_by_another_process(
        self, store: Store, db_url: str
    ) -> None:
        other = Store(make_engine(db_url))  # another API process on the same database
        key = "p" * 32
        consents, others = ConsentLog(store), ConsentLog(other)
        assert consents.states([key], "analytics") == {}  # cached: never decided
        others.record(key, {"analytics": False}, 1)
        assert consents.states([key], "analytics") == {key: False}
        others.record(key, {"analytics": True}, 2)
        assert consents.states([key, "q" * 32], "analytics") == {key: True}
        other.dispose()

    def test_api_keys(self, store: Store) -> None:
        keys = KeyManager(store, cache_seconds=0)
        info, token = keys.create("web", "ingest")
        assert keys.authenticate(token).scope == "ingest" and info.revoked_ms is None
        assert [k.key_id for k in keys.list()] == [info.key_id]
        keys.revoke(info.key_id)
        with pytest.raises(UnknownKey):
            keys.revoke(info.key_id)
        (revoked,) = keys.list()
        assert revoked.revoked_ms is not None

    def test_ping(self, store: Store) -> None:
        store.ping()


def test_ping_reports_an_unreachable_database() -> None:
    store = Store(
        make_engine("postgresql://nobody@127.0.0.1:1/none", connect_args={"connect_timeout": 1})
    )
    with pytest.raises(ServiceUnavailable):
        store.ping()


def test_sqlite_runs_in_wal_mode(tmp_path: Any) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'w.db'}")
    with engine.connect() as conn:
        from sqlalchemy import text

        assert conn.execute(text("PRAGMA journal_mode")).scalar_one() == "wal"
        assert conn.execute(text("PRAGMA synchronous")).scalar_one() == 2  # FULL
