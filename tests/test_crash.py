"""Crash safety: a server killed with SIGKILL mid-stream loses no acknowledged event and stores
nothing twice, once the client resends what it has no acknowledgement for (issue 3)."""

from __future__ import annotations

import random
import signal
import threading
import time
from collections.abc import Callable

import pytest
from sqlalchemy import text

from tastebud.client import Client
from tastebud.config import Settings
from tastebud.services import build_services
from tastebud.store import make_engine

from conftest import Server, event

pytestmark = pytest.mark.slow


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def crash_server(request: pytest.FixtureRequest, server_factory: Callable[..., Server]) -> Server:
    if request.param == "sqlite":
        return server_factory()
    return server_factory(TASTEBUD_DATABASE_URL=request.getfixturevalue("db_url_pg"))


def test_sigkill_loses_no_acknowledged_event(crash_server: Server) -> None:
    server = crash_server
    env = server.env
    settings = Settings(
        data_dir=env["TASTEBUD_DATA_DIR"],
        database_url=env.get("TASTEBUD_DATABASE_URL"),
        pseudonym_key=env["TASTEBUD_PSEUDONYM_KEY"],
        fernet_keys=env["TASTEBUD_FERNET_KEYS"],
    )
    services = build_services(settings, migrate=False)
    key = services.keys.create("crash", "ingest")[1]
    database_url = settings.resolved_database_url()
    services.close()

    rng = random.Random(20261126)
    # Long enough that the first kill (0.73 s in) always lands mid-stream, even on a fast run.
    events = [event(user=f"crash-{i % 97}") for i in range(60_000)]
    acknowledged = [0]
    done = threading.Event()
    kills: list[int] = []

    def stream() -> None:
        with Client(server.url, key, batch_size=200, max_retries=200, backoff=0.05) as tb:
            tb.send(events, on_batch=lambda n: acknowledged.__setitem__(0, acknowledged[0] + n))
        done.set()

    sender = threading.Thread(target=stream)
    sender.start()
    try:
        for _ in range(3):
            time.sleep(rng.uniform(0.3, 1.2))
            if done.is_set():
                break
            assert server.proc is not None
            server.proc.send_signal(signal.SIGKILL)  # no shutdown, no flush: a crash
            server.proc.wait()
            kills.append(acknowledged[0])
            server.start()  # same port, same database
        sender.join(timeout=300)
        assert not sender.is_alive(), "the client never finished"
    finally:
        done.set()
    assert kills, "the server was never killed mid-stream"
    assert any(0 < k < len(events) for k in kills)
    assert acknowledged[0] == len(events)

    engine = make_engine(database_url)
    with engine.connect() as conn:
        total, distinct = conn.execute(
            text("SELECT count(*), count(DISTINCT event_id) FROM events")
        ).one()
        stored = {r[0] for r in conn.execute(text("SELECT event_id FROM events"))}
    engine.dispose()
    assert total == distinct == len(events)  # nothing lost, nothing twice
    assert stored == {e["event_id"] for e in events}
