"""End to end: a real ``tastebud serve`` process, the Python client, SQLite and PostgreSQL."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tastebud.client import Client, ClientError
from tastebud.config import Settings
from tastebud.services import build_services

from conftest import Server, event, free_port

pytestmark = pytest.mark.slow


def admin_key(server: Server) -> str:
    settings = Settings(
        data_dir=server.env["TASTEBUD_DATA_DIR"],
        database_url=server.env.get("TASTEBUD_DATABASE_URL"),
        pseudonym_key=server.env["TASTEBUD_PSEUDONYM_KEY"],
        fernet_keys=server.env["TASTEBUD_FERNET_KEYS"],
    )
    services = build_services(settings, migrate=False)
    key = services.keys.create("e2e", "admin")[1]
    services.close()
    return key


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def server(request: pytest.FixtureRequest, server_factory: Callable[..., Server]) -> Server:
    if request.param == "sqlite":
        return server_factory()
    url = request.getfixturevalue("db_url_pg")
    return server_factory(TASTEBUD_DATABASE_URL=url)


def test_client_sends_batches_exactly_once(server: Server) -> None:
    key = admin_key(server)
    events = [event(user=f"u{i % 50}") for i in range(2300)]
    events[100] = {**events[100], "event_type": "bogus"}
    progress: list[int] = []
    with Client(server.url, key, batch_size=500) as tb:
        summary = tb.send(events, on_batch=progress.append)
        assert (summary.accepted, summary.duplicates, summary.rejected) == (2299, 0, 1)
        assert summary.rejections[0]["event_id"] == events[100]["event_id"]
        assert progress == [500, 500, 500, 500, 300]
        again = tb.send(events)
        assert (again.accepted, again.duplicates) == (0, 2299)
        assert tb.track(event())["status"] == "accepted"
        with pytest.raises(ClientError) as info:
            tb.track(event("search"))
        assert info.value.status == 422 and "data" in str(info.value)
        assert tb.health()


class StartOnRefusal(httpx.HTTPTransport):
    """The network, except that the first refused connection starts ``server`` (in a thread):
    the client's first attempt is certain to find no server, whatever the machine's speed."""

    def __init__(self, server: Server) -> None:
        super().__init__()
        self.server = server
        self.refused = 0
        self.starter: threading.Thread | None = None

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        try:
            return super().handle_request(request)
        except httpx.ConnectError:
            self.refused += 1
            if self.starter is None:
                self.starter = threading.Thread(target=self.server.start)
                self.starter.start()
            raise


def test_client_retries_until_the_server_is_up(server_factory: Callable[..., Server]) -> None:
    first = server_factory()
    key = admin_key(first)
    first.stop()
    late = Server(first.env, free_port())
    transport = StartOnRefusal(late)
    try:
        # 12 retries, 0.2 s doubling up to 10 s: over a minute for the server to start.
        with Client(late.url, key, backoff=0.2, max_retries=12, transport=transport) as tb:
            summary = tb.send([event() for _ in range(10)])
            assert summary.accepted == 10
        assert transport.refused >= 1  # it really waited for the server
    finally:
        if transport.starter is not None:
            transport.starter.join()
        late.stop()


def test_client_gives_up_with_a_clear_error() -> None:
    with Client(
        f"http://127.0.0.1:{free_port()}", "tb_ingest_x_y", max_retries=1, backoff=0.01
    ) as tb:
        with pytest.raises(ClientError, match="gave up after 2 attempts"):
            tb.send([event()])
        assert "tb_ingest_x_y" not in repr(tb)


def test_several_workers_share_one_sqlite_database(server_factory: Callable[..., Server]) -> None:
    server = server_factory()
    key = admin_key(server)
    server.stop()
    multi = Server(server.env, free_port())
    multi.proc = None
    import subprocess
    import sys

    with multi.log.open("ab") as log:
        multi.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tastebud.cli",
                "serve",
                "--port",
                str(multi.port),
                "--workers",
                "2",
            ],
            env=multi.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(multi.url + "/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        batches = [[event(user=f"w{t}-{i}") for i in range(1000)] for t in range(4)]
        results: list[Any] = [None] * 4

        def send(t: int) -> None:
            with Client(multi.url, key, batch_size=250) as tb:
                results[t] = tb.send(batches[t] + batches[(t + 1) % 4])

        threads = [threading.Thread(target=send, args=(t,)) for t in range(4)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        assert sum(r.accepted for r in results) == 4000
        assert sum(r.duplicates for r in results) == 4000
    finally:
        multi.stop()
