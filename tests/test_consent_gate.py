"""The personalization gate reads consent incrementally (issue 16, point 2): after the first full
read, a check reads only the consent-log rows appended since the last one; decisions made by
another process arrive; an erasure (which deletes log rows, and on SQLite may hand a deleted id to
the next row) makes the gate read everything again, off the request path. On SQLite and, when
configured, PostgreSQL."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, Literal

import pytest
from sqlalchemy import delete, event, text

from tastebud.privacy import ConsentLog, ConsentPolicy, PersonalizationGate, Tombstones
from tastebud.privacy.consent_log import _CONSENT_LOG_LOCK
from tastebud.rights import erase
from tastebud.services import Services
from tastebud.store import Store, make_engine
from tastebud.store import tables as t


def key(n: int) -> str:
    return f"user{n:028d}"  # a 32-character pseudonym


class Counting:
    """The consent log as the gate's reader, recording what each read returned."""

    def __init__(self, store: Store) -> None:
        self.log = ConsentLog(store)
        self.reads: list[tuple[str, int | None]] = []

    def snapshot(self, purpose: str) -> Any:
        got = self.log.snapshot(purpose)
        self.reads.append(("snapshot", got.rows))
        return got

    def since(self, purpose: str, mark: Any) -> Any:
        got = self.log.since(purpose, mark)
        self.reads.append(("since", None if got is None else got.rows))
        return got


def decide(store: Store, user_key: str, changes: dict[str, bool], now_ms: int) -> None:
    ConsentLog(store).record(user_key, changes, now_ms)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Later:
    """Background work kept until the test runs it."""

    def __init__(self) -> None:
        self.jobs: list[Callable[[], None]] = []

    def __call__(self, work: Callable[[], None]) -> None:
        self.jobs.append(work)

    def run(self) -> None:
        jobs, self.jobs = self.jobs, []
        for work in jobs:
            work()


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    s = Store(make_engine(db_url))
    yield s
    s.dispose()


def make_gate(
    reader: Any, mode: Literal["opt-out", "opt-in"] = "opt-out"
) -> tuple[PersonalizationGate, Clock, Later]:
    clock, later = Clock(), Later()
    gate = PersonalizationGate(reader, ConsentPolicy(mode), clock=clock, background=later)
    return gate, clock, later


def test_a_check_reads_only_the_new_rows(store: Store) -> None:
    n = 40
    for i in range(n):
        decide(store, key(i), {"personalization": i % 2 == 0}, 1_000 + i)
    reader = Counting(store)
    gate, clock, _ = make_gate(reader)
    assert gate(key(1)) is False and gate(key(2)) is True and gate(key(n + 5)) is True
    assert reader.reads == [("snapshot", n)]  # the one full read, on first use
    decide(store, key(2), {"personalization": False}, 5_000)
    assert gate(key(2)) is True  # within the second: answered from memory, nothing read
    assert reader.reads == [("snapshot", n)]
    clock.now += 1.5
    assert gate(key(2)) is False
    assert reader.reads[1:] == [("since", 1)]  # one new row read, not n + 1
    clock.now += 1.5
    assert gate(key(2)) is False and reader.reads[2:] == [("since", 0)]
    # The newest decision of a user wins; other purposes are read past, never applied.
    decide(store, key(3), {"personalization": True}, 6_000)
    decide(store, key(3), {"personalization": False, "analytics": True}, 6_001)
    decide(store, key(4), {"analytics": False}, 6_002)
    gate.refresh()
    assert reader.reads[3:] == [("since", 4)]
    assert gate(key(3)) is False and gate(key(4)) is True


def test_an_incremental_check_reads_no_stored_decision(store: Store) -> None:
    """On the SQL itself: after the first read, a check never reads the ``consents`` table and
    asks the consent log for rows from the last id seen on (the old gate re-read every stored
    decision whenever the log grew)."""
    for i in range(10):
        decide(store, key(i), {"personalization": False}, 1_000 + i)
    gate, clock, _ = make_gate(ConsentLog(store))
    assert gate(key(1)) is False
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    event.listen(store.engine, "before_cursor_execute", record)
    try:
        decide(store, key(11), {"personalization": False}, 9_000)
        statements.clear()
        clock.now += 2
        assert gate(key(11)) is False
    finally:
        event.remove(store.engine, "before_cursor_execute", record)
    reads = [s for s in statements if "consent" in s]
    assert reads and not any("FROM consents" in s for s in reads), reads
    assert any("FROM consent_log WHERE id >=" in s for s in reads), reads


def test_decisions_from_another_process_reach_the_gate(store: Store, db_url: str) -> None:
    gate, clock, _ = make_gate(Counting(store), mode="opt-in")
    assert gate(key(1)) is False  # never decided: opt-in
    other = Store(make_engine(db_url))  # another API process on the same database
    try:
        decide(other, key(1), {"personalization": True}, 1_000)
        decide(other, key(2), {"personalization": True}, 1_001)
        decide(other, key(2), {"personalization": False}, 1_002)
        clock.now += 1.01
        assert gate(key(1)) is True and gate(key(2)) is False
    finally:
        other.dispose()


def test_refresh_applies_a_change_of_this_process_at_once(store: Store) -> None:
    gate, _, _ = make_gate(ConsentLog(store))
    assert gate(key(1)) is True
    decide(store, key(1), {"personalization": False}, 1_000)
    gate.refresh()  # what the consent route does after recording a change
    assert gate(key(1)) is False


def test_an_erasure_is_noticed_and_read_again_in_the_background(
    any_services: Services,
) -> None:
    """The erased user's log rows are not the newest (the old gate, versioned by the log's
    newest id, kept their decision), and the gate reads everything again off the request path."""
    store = any_services.store
    erased, kept = key(1), key(2)
    decide(store, erased, {"personalization": False}, 1_000)
    decide(store, kept, {"personalization": False}, 1_001)
    reader = Counting(store)
    gate, clock, later = make_gate(reader)
    assert gate(erased) is False and gate(kept) is False
    erase(any_services.erasure_context(), erased)
    clock.now += 2
    assert gate(erased) is False  # the check noticed it; the full read is not on this call
    assert reader.reads == [("snapshot", 2), ("since", None)] and len(later.jobs) == 1
    clock.now += 2
    assert gate(kept) is False and len(reader.reads) == 2  # no reads while it is pending
    later.run()
    assert reader.reads[-1] == ("snapshot", 1)
    assert gate(erased) is True and gate(kept) is False  # opt-out: never decided
    # Incremental again from the new snapshot.
    decide(store, erased, {"personalization": False}, 2_000)
    clock.now += 2
    assert gate(erased) is False and reader.reads[-1] == ("since", 1)


def test_refresh_after_an_erasure_reads_everything_at_once(any_services: Services) -> None:
    store = any_services.store
    decide(store, key(1), {"personalization": True}, 1_000)
    decide(store, key(2), {"personalization": True}, 1_001)
    gate, _, later = make_gate(ConsentLog(store), mode="opt-in")
    assert gate(key(1)) is True
    erase(any_services.erasure_context(), key(1))
    gate.refresh()
    assert gate(key(1)) is False and gate(key(2)) is True and later.jobs == []


def test_refresh_while_a_background_read_is_pending_reads_now(any_services: Services) -> None:
    """A change recorded in this process applies at once even while a full read started by an
    erasure has not come in; the older read, when it does, is dropped."""
    store = any_services.store
    decide(store, key(1), {"personalization": False}, 1_000)
    decide(store, key(2), {"personalization": True}, 1_001)
    reader = Counting(store)
    gate, clock, later = make_gate(reader)
    assert gate(key(1)) is False
    erase(any_services.erasure_context(), key(1))
    clock.now += 2
    gate(key(2))
    assert len(later.jobs) == 1  # the background read, not run yet
    decide(store, key(2), {"personalization": False}, 2_000)
    gate.refresh()
    assert gate(key(2)) is False and gate(key(1)) is True
    later.run()  # reads, but a newer full read has been applied: dropped
    assert [r[0] for r in reader.reads].count("snapshot") == 3
    assert gate(key(2)) is False and gate(key(1)) is True


def test_checks_do_not_wait_for_a_full_read(any_services: Services) -> None:
    """While a full read after an erasure runs (here in ``refresh``, in another thread), a call
    due for a check answers from memory at once instead of waiting for it."""
    store = any_services.store
    decide(store, key(1), {"personalization": False}, 1_000)
    decide(store, key(2), {"personalization": False}, 1_001)

    class Slow(Counting):
        def __init__(self, store: Store) -> None:
            super().__init__(store)
            self.entered, self.release = threading.Event(), threading.Event()
            self.waited = threading.Event()

        def snapshot(self, purpose: str) -> Any:
            if self.reads:  # every full read after the first one waits for the test
                self.entered.set()
                self.release.wait(10)
                self.waited.set()
            return super().snapshot(purpose)

    reader = Slow(store)
    gate, clock, _ = make_gate(reader)
    assert gate(key(1)) is False
    erase(any_services.erasure_context(), key(1))
    refreshing = threading.Thread(target=gate.refresh)
    refreshing.start()
    try:
        assert reader.entered.wait(30)
        clock.now += 2
        assert gate(key(2)) is False and not reader.waited.is_set()  # answered, not waiting
    finally:
        reader.release.set()
        refreshing.join(30)
    assert gate(key(1)) is True


def test_an_erased_newest_row_whose_id_is_given_again_is_noticed(store: Store) -> None:
    """SQLite hands the highest id of a deleted row to the next row. Between an erasure's
    deletion of consent rows and its tombstone, a decision taking that id must still arrive (the
    old gate, versioned by the log's newest id, never saw it)."""
    decide(store, key(1), {"personalization": False}, 1_000)
    decide(store, key(2), {"personalization": False}, 1_001)  # the newest row
    gate, clock, later = make_gate(ConsentLog(store))
    assert gate(key(2)) is False and gate(key(3)) is True
    with store.engine.begin() as conn:  # the erasure's consent step, before its tombstone
        for table in (t.consents, t.consent_log):
            conn.execute(delete(table).where(table.c.user_key == key(2)))
    decide(store, key(3), {"personalization": False}, 1_002)
    clock.now += 2
    gate(key(3))
    later.run()
    assert gate(key(3)) is False and gate(key(2)) is True and gate(key(1)) is False


def test_ingest_consent_cache_sees_erasures(store: Store, db_url: str) -> None:
    """``ConsentLog.states`` (ingest's cache, per version of all consent state) after another
    process gave a deleted newest id to another user's decision (SQLite), and after it erased a
    decision that was not the newest."""
    other = Store(make_engine(db_url))
    states = ConsentLog(store).states  # one reader: its cache is what is tested
    try:
        decide(other, key(1), {"analytics": False}, 1_000)
        decide(other, key(2), {"analytics": False}, 1_001)
        assert states([key(1), key(3)], "analytics") == {key(1): False}
        with other.engine.begin() as conn:  # the newest rows deleted (an erasure's first step)
            for table in (t.consents, t.consent_log):
                conn.execute(delete(table).where(table.c.user_key == key(2)))
        decide(other, key(3), {"analytics": False}, 1_002)  # SQLite: the same id again
        assert states([key(3)], "analytics") == {key(3): False}
        assert states([key(1)], "analytics") == {key(1): False}
        with other.engine.begin() as conn:  # an erasure of key(1), whose rows are not the newest
            for table in (t.consents, t.consent_log):
                conn.execute(delete(table).where(table.c.user_key == key(1)))
        Tombstones(other).add("tomb" * 16, 2_000, "request-1")
        assert states([key(1)], "analytics") == {}
    finally:
        other.dispose()


def test_a_repeated_erasure_reaches_the_tombstone_cache_of_another_process(
    store: Store, db_url: str
) -> None:
    """Issue 16: ``erased_at`` cached per tombstone count only, and a repeated erasure moves the
    time of an existing tombstone without changing the count: another process kept the first
    erasure's time, and took replayed events sent between the two erasures."""

    def tombstone(user_key: str) -> str:
        return f"tomb-{user_key}"

    here = Tombstones(store)  # ingest's reader in this process
    other = Store(make_engine(db_url))  # the process that erases
    try:
        assert here.erased_at([key(1)], tombstone) == {}
        Tombstones(other).add(tombstone(key(1)), 1_000, "request-1")
        assert here.erased_at([key(1), key(2)], tombstone) == {key(1): 1_000}
        Tombstones(other).add(tombstone(key(1)), 2_000, "request-2")  # erased again
        assert here.erased_at([key(1), key(2)], tombstone) == {key(1): 2_000}
        Tombstones(other).add(tombstone(key(2)), 3_000, "request-3")
        assert here.erased_at([key(1), key(2)], tombstone) == {key(1): 2_000, key(2): 3_000}
    finally:
        other.dispose()


@pytest.mark.postgres
def test_postgres_consent_writes_commit_in_id_order(db_url_pg: str) -> None:
    """A reader of rows after id n must never see n before a smaller id is committed: every
    consent write waits for the one before it (an advisory lock), so ids commit in order."""
    store = Store(make_engine(db_url_pg))
    holder = store.engine.connect()
    try:
        holder.begin()
        holder.execute(text(f"SELECT pg_advisory_xact_lock({_CONSENT_LOG_LOCK})"))
        done = threading.Event()

        def write() -> None:
            decide(store, key(1), {"personalization": False}, 1_000)
            done.set()

        writer = threading.Thread(target=write)
        writer.start()
        waiting = 0
        with store.engine.connect() as conn:
            for _ in range(500):  # until the writer waits on the lock (a few ms)
                waiting = conn.execute(
                    text(
                        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
                        " AND classid = :high AND objid = :low AND objsubid = 1"
                    ),
                    {"high": _CONSENT_LOG_LOCK >> 32, "low": _CONSENT_LOG_LOCK & 0xFFFFFFFF},
                ).scalar_one()
                if waiting or done.is_set():
                    break
                done.wait(0.01)
        assert waiting >= 1 and not done.is_set()
        holder.rollback()
        writer.join(timeout=30)
        assert done.is_set()
        assert ConsentLog(store).decisions(key(1)) == {"personalization": (False, 1_000)}
    finally:
        holder.close()
        store.dispose()


def test_a_started_gate_checks_in_its_own_thread_and_calls_never_read(store: Store) -> None:
    """A serving process starts the gate: the checks run in the gate's thread, so a request on
    the event loop never waits for the database, and changes still arrive within about
    ``every_s``."""
    decide(store, key(1), {"personalization": False}, 1_000)
    readers: list[str] = []

    class Threads(Counting):
        def since(self, purpose: str, mark: Any) -> Any:
            readers.append(threading.current_thread().name)
            return super().since(purpose, mark)

    reader = Threads(store)
    gate = PersonalizationGate(reader, ConsentPolicy("opt-out"), every_s=0.05)
    gate.start()
    try:
        assert reader.reads == [("snapshot", 1)]  # read at start, not by the first call
        assert gate(key(1)) is False and gate(key(2)) is True
        decide(store, key(2), {"personalization": False}, 2_000)
        deadline = time.monotonic() + 20
        while gate(key(2)) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert gate(key(2)) is False
        assert readers and set(readers) == {"tastebud-consent"}  # never the caller's thread
    finally:
        gate.stop()
    assert not any(t.name == "tastebud-consent" for t in threading.enumerate())
