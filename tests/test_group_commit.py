"""Group commit: concurrent writers share transactions without losing or misattributing rows."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any

import pytest

from tastebud.store import Store, make_engine
from tastebud.store._group import GroupCommit


def test_concurrent_submitters_all_get_their_own_result() -> None:
    """While one commit runs, the other 39 submitters queue behind it; the next leader writes
    all 39 in one transaction, and each caller gets its own result. (The first commit waits
    until they are queued: no sleep decides the grouping.)"""
    calls: list[list[int]] = []
    release = threading.Event()

    def write(payloads: Sequence[int]) -> list[int]:
        calls.append(list(payloads))
        if len(calls) == 1:
            assert release.wait(60), "the other submitters never queued"
        return [p * 10 for p in payloads]

    gc: GroupCommit[int, int] = GroupCommit(write)
    results: dict[int, int] = {}

    def run(i: int) -> None:
        results[i] = gc.submit(i)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(40)]
    threads[0].start()
    while not calls:  # the first commit is running (and waits)
        time.sleep(0.001)
    for t in threads[1:]:
        t.start()
    deadline = time.monotonic() + 60  # a bound against a hang, not a timing target
    while len(gc._queue) < 39 and time.monotonic() < deadline:
        time.sleep(0.001)
    release.set()
    for t in threads:
        t.join()
    assert results == {i: i * 10 for i in range(40)}
    assert calls[0] == [0] and sorted(calls[1]) == list(range(1, 40)) and len(calls) == 2


def test_an_error_reaches_every_caller_of_the_group() -> None:
    def write(payloads: Sequence[int]) -> list[int]:
        raise RuntimeError("disk full")

    gc: GroupCommit[int, int] = GroupCommit(write)
    with pytest.raises(RuntimeError, match="disk full"):
        gc.submit(1)


def row(event_id: str) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "event_type": "click",
        "user_key": "u" * 32,
        "ts_ms": 1,
        "received_ms": 1,
        "data": None,
        "context": None,
    }


def test_duplicates_across_concurrent_batches_are_attributed_once(db_url: str) -> None:
    store = Store(make_engine(db_url))
    shared = [row(f"shared-{i}") for i in range(200)]
    outcomes: list[set[str]] = []
    lock = threading.Lock()

    def run(t: int) -> None:
        own = [row(f"own-{t}-{i}") for i in range(100)]
        got = store.insert_events(shared + own)
        with lock:
            outcomes.append(got)

    threads = [threading.Thread(target=run, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    accepted_shared = [e for got in outcomes for e in got if e.startswith("shared-")]
    assert sorted(accepted_shared) == sorted(r["event_id"] for r in shared)  # each exactly once
    assert sum(len(got) for got in outcomes) == 200 + 8 * 100
    assert store.count_events() == 1000
    store.dispose()
