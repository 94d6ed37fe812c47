"""Engine factory: one function turns a URL into a configured SQLAlchemy engine."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import orjson
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from tastebud.files import narrow, open_private, private_dir

__all__ = ["is_sqlite", "make_engine", "normalize_url"]


def normalize_url(url: str) -> str:
    """Use psycopg 3 for plain ``postgresql://`` URLs.

    >>> normalize_url("postgresql://postgres@127.0.0.1:5432/test")
    'postgresql+psycopg://postgres@127.0.0.1:5432/test'
    """
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def is_sqlite(engine: Engine) -> bool:
    """Whether the engine talks to SQLite."""
    return engine.dialect.name == "sqlite"


def _json_dumps(value: Any) -> str:
    return orjson.dumps(value).decode("utf-8")


def _private_sqlite_file(path: Path) -> None:
    """The database holds personal data: its file (and SQLite's ``-wal``/``-shm``, which take
    the database's mode) is ``0600``, created so before SQLite opens it; one an older version
    created more open is narrowed."""
    private_dir(path.parent)
    with open_private(path, "ab"):  # created 0600 if missing, narrowed if wider; not truncated
        pass
    for side in (path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        if side.exists():
            narrow(side)


def make_engine(
    url: str,
    *,
    sqlite_synchronous: Literal["FULL", "NORMAL"] = "FULL",
    pool_size: int = 10,
    connect_args: Mapping[str, object] | None = None,
) -> Engine:
    """Create an engine for ``sqlite:///path`` or ``postgresql://...``.

    SQLite runs in WAL mode (readers never block the writer) with a 30 s busy timeout, foreign
    keys on, and ``synchronous`` as configured; its parent directory is created if missing.
    ``connect_args`` are passed to the database driver's ``connect()`` as they are.
    """
    url = normalize_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        db = parsed.database
        if db and db != ":memory:":
            _private_sqlite_file(Path(db))
        engine = create_engine(
            url,
            json_serializer=_json_dumps,
            json_deserializer=orjson.loads,
            connect_args={"timeout": 30, "check_same_thread": False, **(connect_args or {})},
            poolclass=NullPool if db in (None, "", ":memory:") else None,
        )

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute(f"PRAGMA synchronous={sqlite_synchronous}")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute("PRAGMA cache_size=-65536")  # 64 MiB of page cache per connection
            cur.close()

        return engine
    return create_engine(
        url,
        json_serializer=_json_dumps,
        json_deserializer=orjson.loads,
        pool_size=pool_size,
        max_overflow=pool_size,
        # No pre-ping: it costs a round trip per checkout on the ingest path. Connections that
        # died are invalidated on their first error, and clients retry (the API is idempotent).
        pool_recycle=1800,
        connect_args=dict(connect_args or {}),
    )
