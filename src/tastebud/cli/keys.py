"""``tastebud db upgrade`` and ``tastebud keys create|list|revoke``."""

from __future__ import annotations

from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated

import orjson
import typer

from tastebud.cli import (
    DataDirOpt,
    _settings,
    db_app,
    keys_app,
    out,
    print_table,
    prog,
)

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from tastebud.apikeys import KeyManager

__all__ = ["KEY_SCOPES", "db_upgrade", "keys_create", "keys_list", "keys_revoke"]

KEY_SCOPES = ("ingest", "serve", "admin")
"""``tastebud.apikeys.SCOPES``, spelled out so that ``--help`` does not import the database
layer (``tests/test_cli.py`` checks that the two agree)."""


@contextmanager
def _key_manager(data_dir: Path | None) -> Iterator[KeyManager]:
    """The API keys of the configured database, without the rest of the stack: a keys command
    loads the database layer only (about 1.5 s, against 6 s for every service)."""
    from tastebud.apikeys import KeyManager
    from tastebud.config import Settings
    from tastebud.monitoring import configure_logging
    from tastebud.privacy import load_secrets
    from tastebud.store import Store, make_engine, upgrade

    settings: Settings = _settings(data_dir)
    configure_logging(
        "WARNING" if settings.log_level == "INFO" else settings.log_level, json=settings.log_json
    )
    load_secrets(settings)  # production without its secrets is refused, as by every command
    engine = make_engine(
        settings.resolved_database_url(), sqlite_synchronous=settings.sqlite_synchronous
    )
    try:
        if settings.should_auto_migrate():
            upgrade(engine)
        yield KeyManager(Store(engine), cache_seconds=settings.key_cache_seconds)
    finally:
        engine.dispose()


@db_app.command("upgrade")
def db_upgrade(data_dir: DataDirOpt = None) -> None:
    """Create or migrate the database schema to the newest version (Alembic)."""
    from tastebud.store import current_revision, head_revision, make_engine, upgrade

    settings = _settings(data_dir)
    engine = make_engine(settings.resolved_database_url())
    before = current_revision(engine)
    upgrade(engine)
    out.print(f"database at revision {head_revision()} (was {before or 'empty'})")
    engine.dispose()


@keys_app.command("create")
def keys_create(
    scope: Annotated[str, typer.Option(help=f"One of {', '.join(KEY_SCOPES)}.")],
    name: Annotated[str, typer.Option(help="A label for the key (who or what uses it).")],
    data_dir: DataDirOpt = None,
) -> None:
    """Create an API key and print it once, as the last token of the output. Only its hash is
    stored: copy it now."""
    with _key_manager(data_dir) as keys:
        info, key = keys.create(name, scope)
    out.print(
        f"created {info.scope} key '{info.name}' with id {info.key_id}; it is shown only once:"
    )
    print(key)


@keys_app.command("list")
def keys_list(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    data_dir: DataDirOpt = None,
) -> None:
    """List API keys (ids, names, scopes, state; never the keys themselves)."""
    from datetime import UTC, datetime

    from rich.table import Table

    with _key_manager(data_dir) as keys:
        rows = keys.list()
    if as_json:
        print(
            orjson.dumps(
                [
                    {
                        "key_id": k.key_id,
                        "name": k.name,
                        "scope": k.scope,
                        "created_ms": k.created_ms,
                        "revoked_ms": k.revoked_ms,
                        "state": "revoked" if k.revoked_ms else "active",
                    }
                    for k in rows
                ],
                option=orjson.OPT_INDENT_2,
            ).decode()
        )
        return
    if not rows:
        out.print(f"no API keys; create one with: {prog()} keys create --scope ingest --name web")
        return
    table = Table("key id", "scope", "state", "created (UTC)", "name", box=None, pad_edge=False)
    for k in rows:
        created = datetime.fromtimestamp(k.created_ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M")
        table.add_row(k.key_id, k.scope, "revoked" if k.revoked_ms else "active", created, k.name)
    print_table(table)


@keys_app.command("revoke")
def keys_revoke(
    key_id: Annotated[str, typer.Argument(help="The key id shown by 'tastebud keys list'.")],
    data_dir: DataDirOpt = None,
) -> None:
    """Revoke a key: it stops working at once in this process and within the key cache time
    (TASTEBUD_KEY_CACHE_SECONDS, default 2 s) in running servers."""
    with _key_manager(data_dir) as keys:
        keys.revoke(key_id)
    out.print(f"revoked key {key_id}")
