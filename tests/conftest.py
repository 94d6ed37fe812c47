"""Shared fixtures: settings on a temporary SQLite file, the real PostgreSQL when configured,
API clients with one key per scope, a real server process for end-to-end tests, and the one
guard for what lives outside the checkout (:func:`unavailable`: skip, or fail in CI).

The log audit over every test of the session is a plugin, ``log_audit.py`` (loaded by ``-p``
in pyproject's ``addopts``); its ``log_audit`` fixture is available to every test."""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
from cryptography.fernet import Fernet
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from log_audit import LogAudit
from tastebud.api import create_app
from tastebud.config import Settings
from tastebud.services import Services, build_services
from tastebud.store import make_engine, upgrade
from tastebud.store.tables import metadata

_CI = os.environ.get("CI", "").lower() not in {"", "0", "false"}
REQUIRE_SERVICES = _CI or os.environ.get("TASTEBUD_REQUIRE_SERVICES") == "1"
"""In CI (``CI`` set, or ``TASTEBUD_REQUIRE_SERVICES=1`` as ``.ci/run`` sets it) a missing
service, dataset or browser fails the test instead of skipping it (see :func:`unavailable`)."""
PG_URL = os.environ.get("TASTEBUD_TEST_PG_URL")
REDIS_URL = os.environ.get("TASTEBUD_TEST_REDIS_URL")
# The shared datasets sit beside the checkout (../shared/data); TASTEBUD_SHARED_DATA overrides.
SHARED_DATA = Path(
    os.environ.get("TASTEBUD_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")
)


def register_predictor(
    services: Services,
    label: str,
    config: Any,
    *,
    as_of: Any = None,
    reason: str | None = None,
) -> tuple[Any, str]:
    """Fit a ``label`` predictor (``churn``, ``conversion``) on the stored events with
    ``config`` (a ``PredictorConfig``), save and register it, and promote it (forced, with
    ``reason``) unless ``reason`` is ``None``. Returns (the version, its artifact id)."""
    from tastebud.models.predictor import Predictor
    from tastebud.registry import promote
    from tastebud.registry.predictor import save_predictor
    from tastebud.training import event_training_set, table_from_frame

    frame = event_training_set(services.store, label, as_of)
    table = table_from_frame(frame.drop("as_of_ms", "snapshot_id"), "label", "user_key")
    model = Predictor(config).fit(table.x, table.y, table.names, table.categorical)
    staging = services.registry.staging_dir(label)
    artifact_id = save_predictor(staging, model, table.schema(), {})
    mv = services.registry.register(
        label,
        staging,
        kind="predictor",
        algorithm=model.chosen,
        metrics={},
        lineage={},
        actor="test",
    )
    if reason is not None:
        promote(
            services.registry,
            services.settings.governance,
            label,
            mv.version,
            actor="test",
            force=True,
            reason=reason,
        )
    return mv, artifact_id


def unavailable(what: str) -> NoReturn:
    """Skip the test because ``what`` is missing; in CI (:data:`REQUIRE_SERVICES`) fail it.

    The one guard for everything a test needs from outside the checkout: services, the shared
    datasets, the browser.
    """
    if REQUIRE_SERVICES:
        pytest.fail(f"{what} (required in CI and with TASTEBUD_REQUIRE_SERVICES=1)")
    pytest.skip(what)


def need_service(name: str, url: str | None) -> str:
    """Return the service URL, or skip (fail in CI)."""
    if url:
        return url
    unavailable(f"{name} not configured (set TASTEBUD_TEST_{name.upper()}_URL)")


def need_shared(path: Path) -> Path:
    """``path`` (under the shared data beside the checkout), or skip when it is not there (fail
    in CI)."""
    if not path.exists():
        unavailable(f"{path} is not here (the shared data: ../shared/data or TASTEBUD_SHARED_DATA)")
    return path


@pytest.fixture
def shared_data() -> Path:
    """The shared datasets (``../shared/data``); skips when absent, fails in CI."""
    return need_shared(SHARED_DATA)


def need_movielens() -> Path:
    """MovieLens 100K (``../shared/data/ml-100k``), or skip when it is not there (fail in CI)."""
    return need_shared(SHARED_DATA / "ml-100k" / "u.data").parent


@pytest.fixture
def movielens() -> Path:
    """MovieLens 100K (:func:`need_movielens` as a fixture)."""
    return need_movielens()


@pytest.fixture(scope="session")
def pg_schema_url() -> Iterator[str]:
    """A fresh PostgreSQL schema for this test session, migrated; dropped at the end."""
    base = need_service("pg", PG_URL)
    schema = f"tb_test_{os.getpid()}_{secrets.token_hex(3)}"
    admin = make_engine(base)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in base else "?"
    url = f"{base}{sep}options=-csearch_path%3D{schema}"
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    yield url
    with admin.begin() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


def _truncate(engine: Engine) -> None:
    with engine.begin() as conn:
        names = ", ".join(t.name for t in metadata.sorted_tables)
        conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY"))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A migrated, empty database URL: SQLite always, PostgreSQL when available."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'test.db'}"
        engine = make_engine(url)
        upgrade(engine)
        engine.dispose()
        yield url
        return
    url = request.getfixturevalue("pg_schema_url")
    engine = make_engine(url)
    _truncate(engine)
    engine.dispose()
    yield url


def _per_worker(url: str) -> str:
    """Under pytest-xdist, worker ``gwN`` gets database ``db - N`` (tests flush theirs)."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    n = int(worker.removeprefix("gw") or 0)
    if n == 0:
        return url
    parts = urlsplit(url)
    db = int(parts.path.strip("/") or 0) - n
    if db < 0:
        pytest.fail(f"not enough Redis databases below {url} for xdist worker {worker}")
    return urlunsplit(parts._replace(path=f"/{db}"))


@pytest.fixture
def redis_url() -> Iterator[str]:
    """The test Redis database, flushed before and after."""
    import redis

    url = _per_worker(need_service("redis", REDIS_URL))
    client = redis.Redis.from_url(url)
    client.flushdb()
    yield url
    client.flushdb()
    client.close()


@pytest.fixture
def secret_env(log_audit: LogAudit) -> dict[str, str]:
    """Explicit secrets (so tests can look for them in logs and the database); the log audit
    fails the session if any of them is ever logged."""
    values = {
        "pseudonym_key": secrets.token_hex(32),
        "fernet_keys": Fernet.generate_key().decode(),
    }
    log_audit.note_secrets(values.values())
    return values


@pytest.fixture
def make_settings(tmp_path: Path, secret_env: dict[str, str]) -> Callable[..., Settings]:
    """Build settings in a temporary data dir; keyword arguments override."""

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {"data_dir": tmp_path / "data", **secret_env}
        values.update(overrides)
        return Settings(**values)

    return make


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    """Default settings on a temporary SQLite database."""
    return make_settings()


@pytest.fixture
def services(settings: Settings) -> Iterator[Services]:
    """Services on the default temporary SQLite database."""
    svc = build_services(settings, migrate=True)
    yield svc
    svc.close()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def any_services(
    request: pytest.FixtureRequest, make_settings: Callable[..., Settings]
) -> Iterator[Services]:
    """Services on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        settings = make_settings()
    else:
        settings = make_settings(database_url=request.getfixturevalue("db_url_pg"))
    svc = build_services(settings, migrate=True)
    yield svc
    svc.close()


class Api:
    """A TestClient with one key per scope."""

    def __init__(self, client: TestClient, services: Services) -> None:
        self.client = client
        self.services = services
        self.keys = {
            s: services.keys.create(f"test-{s}", s)[1] for s in ("ingest", "serve", "admin")
        }

    def headers(self, scope: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[scope]}"}

    def request(self, method: str, path: str, scope: str = "admin", **kw: Any) -> httpx.Response:
        headers = {**self.headers(scope), **kw.pop("headers", {})}
        return self.client.request(method, path, headers=headers, **kw)


@pytest.fixture
def make_api() -> Iterator[Callable[[Settings], Api]]:
    """Factory: an :class:`Api` for given settings (closed at teardown)."""
    opened: list[tuple[TestClient, Services]] = []

    def make(settings: Settings) -> Api:
        services = build_services(settings, migrate=True)
        client = TestClient(create_app(settings, services=services))
        client.__enter__()
        opened.append((client, services))
        return Api(client, services)

    yield make
    for client, services in opened:
        client.__exit__(None, None, None)
        services.close()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def api(
    request: pytest.FixtureRequest,
    make_api: Callable[[Settings], Api],
    make_settings: Callable[..., Settings],
) -> Api:
    """The API on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        return make_api(make_settings())
    return make_api(make_settings(database_url=request.getfixturevalue("db_url_pg")))


@pytest.fixture
def db_url_pg(pg_schema_url: str) -> str:
    """The session's PostgreSQL schema, emptied."""
    engine = make_engine(pg_schema_url)
    _truncate(engine)
    engine.dispose()
    return pg_schema_url


@pytest.fixture
def sqlite_api(make_api: Callable[[Settings], Api], settings: Settings) -> Api:
    """The API on SQLite only (for tests that are about the HTTP layer, not storage)."""
    return make_api(settings)


def event(event_type: str = "page_view", user: str = "user-1", **kw: Any) -> dict[str, Any]:
    """A valid event of ``event_type`` with a fresh id."""
    base: dict[str, Any] = {
        "event_id": uuid.uuid4().hex,
        "event_type": event_type,
        "timestamp": "2026-11-20T10:00:00+00:00",
        "user_id": user,
    }
    base.update(kw)
    return base


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """A real ``tastebud serve`` process on 127.0.0.1."""

    def __init__(self, env: dict[str, str], port: int) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.env = env
        self.port = port
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = Path(env["TASTEBUD_DATA_DIR"]) / f"server-{port}.log"

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "tastebud.cli", "serve", "--port", str(self.port)],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "/readyz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if self.proc.poll() is not None:
                raise RuntimeError("server exited:\n" + self.log.read_text()[-3000:])
            time.sleep(0.1)
        raise RuntimeError("server did not become ready:\n" + self.log.read_text()[-3000:])

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def server_factory(tmp_path: Path, secret_env: dict[str, str]) -> Iterator[Callable[..., Server]]:
    """Start real server processes; every one is stopped at teardown."""
    started: list[Server] = []

    def start(**env_overrides: str) -> Server:
        env = {k: v for k, v in os.environ.items() if not k.startswith("TASTEBUD_")}
        env.update(
            {
                "TASTEBUD_DATA_DIR": str(tmp_path / "server-data"),
                "TASTEBUD_PSEUDONYM_KEY": secret_env["pseudonym_key"],
                "TASTEBUD_FERNET_KEYS": secret_env["fernet_keys"],
                "TASTEBUD_LOG_LEVEL": "INFO",
            }
        )
        env.update(env_overrides)
        Path(env["TASTEBUD_DATA_DIR"]).mkdir(parents=True, exist_ok=True)
        server = Server(env, free_port())
        server.start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def chromium_path() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        unavailable("chromium is not installed (make test installs it)")
    return path


@pytest.fixture
def browser() -> Iterator[Any]:
    """Debian's headless Chromium driven by Playwright (no browser is downloaded)."""
    from playwright.sync_api import sync_playwright

    executable = chromium_path()
    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=executable,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        yield b
        b.close()
