"""The ``tastebud`` command. Subcommands follow the pipeline; ``--help`` on each explains it.

Exit codes: 0 success, 1 a Tastebud error (message on stderr), 2 a configuration error or bad
usage.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from tastebud import __version__
from tastebud.apikeys import SCOPES
from tastebud.config import Settings
from tastebud.errors import ConfigError, TastebudError
from tastebud.services import Services, build_services

__all__ = ["app", "main"]

app = typer.Typer(
    name="tastebud",
    help="Tastebud: event collection, training and real-time personalization for NetworkBuster.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
)
db_app = typer.Typer(
    help="Database schema management.", no_args_is_help=True, rich_markup_mode="markdown"
)
keys_app = typer.Typer(
    help="API keys: create, list, revoke.", no_args_is_help=True, rich_markup_mode="markdown"
)
app.add_typer(db_app, name="db")
app.add_typer(keys_app, name="keys")

err = Console(stderr=True)
out = Console(highlight=False, soft_wrap=True)

DataDirOpt = Annotated[
    Path | None,
    typer.Option(
        "--data-dir", help="Data directory (default: $TASTEBUD_DATA_DIR or ./tastebud-data)"
    ),
]


def _settings(data_dir: Path | None = None, **overrides: Any) -> Settings:
    if data_dir is not None:
        overrides["data_dir"] = data_dir
    return Settings(**overrides)


def _services(settings: Settings, migrate: bool | None = None) -> Services:
    from tastebud.monitoring import configure_logging

    configure_logging(
        "WARNING" if settings.log_level == "INFO" else settings.log_level, json=settings.log_json
    )
    return build_services(settings, migrate=migrate)


@app.callback(invoke_without_command=True)
def _root(
    version: Annotated[bool, typer.Option("--version", help="Print the version and exit.")] = False,
) -> None:
    if version:
        out.print(f"tastebud {__version__}")
        raise typer.Exit()


# -- db ---------------------------------------------------------------------------------------
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


# -- keys -------------------------------------------------------------------------------------
@keys_app.command("create")
def keys_create(
    scope: Annotated[str, typer.Option(help=f"One of {', '.join(SCOPES)}.")],
    name: Annotated[str, typer.Option(help="A label for the key (who or what uses it).")],
    data_dir: DataDirOpt = None,
) -> None:
    """Create an API key and print it once, as the last token of the output. Only its hash is
    stored: copy it now."""
    services = _services(_settings(data_dir))
    info, key = services.keys.create(name, scope)
    out.print(
        f"created {info.scope} key '{info.name}' with id {info.key_id}; it is shown only once:"
    )
    print(key)


@keys_app.command("list")
def keys_list(data_dir: DataDirOpt = None) -> None:
    """List API keys (ids, names, scopes, state; never the keys themselves)."""
    from datetime import UTC, datetime

    services = _services(_settings(data_dir))
    rows = services.keys.list()
    if not rows:
        out.print("no API keys; create one with: tastebud keys create --scope ingest --name web")
        return
    for k in rows:
        created = datetime.fromtimestamp(k.created_ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M")
        state = "revoked" if k.revoked_ms else "active"
        out.print(f"{k.key_id}  {k.scope:<6}  {state:<7}  {created}  {k.name}")


@keys_app.command("revoke")
def keys_revoke(
    key_id: Annotated[str, typer.Argument(help="The key id shown by 'tastebud keys list'.")],
    data_dir: DataDirOpt = None,
) -> None:
    """Revoke a key: it stops working at once in this process and within the key cache time
    (TASTEBUD_KEY_CACHE_SECONDS, default 2 s) in running servers."""
    services = _services(_settings(data_dir))
    services.keys.revoke(key_id)
    out.print(f"revoked key {key_id}")


# -- ingest -----------------------------------------------------------------------------------
def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed:,} / {task.total:,}"),
        TimeRemainingColumn(),
        console=err,
        transient=False,
    )


@app.command("ingest")
def ingest(
    file: Annotated[
        Path,
        typer.Argument(
            help="NDJSON file: one event (JSON object) per line.",
            exists=True,
            dir_okay=False,
            readable=True,
        ),
    ],
    batch_size: Annotated[
        int, typer.Option(min=1, max=100_000, help="Events per transaction.")
    ] = 1000,
    data_dir: DataDirOpt = None,
) -> None:
    """Load events from an NDJSON file through the same validation, consent and privacy path as
    the API. Bad lines are counted and reported with their line numbers, never fatal; events
    already stored are counted as duplicates, so a file can be loaded twice safely."""
    services = _services(_settings(data_dir))
    accepted = duplicates = rejected = 0
    reasons: Counter[str] = Counter()
    examples: dict[str, list[int]] = {}
    total = sum(1 for line in file.open("rb") if line.strip())

    def flush(batch: list[Any], lines: list[int]) -> None:
        nonlocal accepted, duplicates, rejected
        result = services.ingestor.ingest(batch, source="file")
        accepted += result.accepted
        duplicates += result.duplicates
        for r, line_no in zip(result.results, lines, strict=True):
            if r.status == "rejected":
                rejected += 1
                reason = r.reason or "rejected"
                reasons[reason] += 1
                examples.setdefault(reason, []).append(line_no)

    with _progress() as progress, file.open("rb") as fh:
        task = progress.add_task(f"ingesting {file.name}", total=total)
        batch: list[Any] = []
        lines: list[int] = []
        for line_no, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                batch.append(orjson.loads(line))
                lines.append(line_no)
            except orjson.JSONDecodeError as exc:
                rejected += 1
                reason = f"malformed JSON ({exc.msg})"
                reasons[reason] += 1
                examples.setdefault(reason, []).append(line_no)
                progress.advance(task)
                continue
            if len(batch) >= batch_size:
                flush(batch, lines)
                progress.advance(task, len(batch))
                batch, lines = [], []
        if batch:
            flush(batch, lines)
            progress.advance(task, len(batch))
    for reason, count in reasons.most_common(10):
        where = ", ".join(str(n) for n in examples[reason][:5])
        more = "..." if len(examples[reason]) > 5 else ""
        out.print(f"  rejected {count:,}x: {reason} (lines {where}{more})")
    out.print(f"{accepted:,} events accepted, {duplicates:,} duplicates, {rejected:,} rejected")


# -- serve ------------------------------------------------------------------------------------
@app.command("serve")
def serve(
    host: Annotated[
        str | None, typer.Option(help="Bind address (default $TASTEBUD_HOST or 127.0.0.1).")
    ] = None,
    port: Annotated[int | None, typer.Option(help="Port (default $TASTEBUD_PORT or 8000).")] = None,
    workers: Annotated[int, typer.Option(min=1, help="API processes.")] = 1,
) -> None:
    """Run the HTTP API (uvicorn). Settings come from TASTEBUD_* variables."""
    import uvicorn

    settings = Settings()
    if settings.should_auto_migrate():
        _services(settings).close()  # migrate once, before workers start
    uvicorn.run(
        "tastebud.api.app:create_app_from_env",
        factory=True,
        host=host or settings.host,
        port=port or settings.port,
        workers=workers,
        access_log=False,
        log_level=settings.log_level.lower(),
    )


@app.command("quickstart")
def quickstart(
    no_serve: Annotated[bool, typer.Option("--no-serve", help="Stop after setting up.")] = False,
    host: Annotated[str | None, typer.Option(help="Bind address.")] = None,
    port: Annotated[int | None, typer.Option(help="Port.")] = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Set up the embedded deployment (database, secrets), create one key per scope, print the
    URL, the keys and example requests, then serve the API."""
    import uvicorn

    from tastebud.api import create_app

    settings = _settings(data_dir)
    services = _services(settings, migrate=True)
    created = {scope: services.keys.create(f"quickstart-{scope}", scope)[1] for scope in SCOPES}
    url = f"http://{host or settings.host}:{port or settings.port}"
    out.print(f"Tastebud {__version__} on {settings.resolved_database_url()}")
    out.print(f"API: {url}   docs: {url}/docs")
    out.print("Fresh API keys (shown once; 'tastebud keys list' shows their ids):")
    for scope, key in created.items():
        out.print(f"  {scope:<6} {key}")
    from datetime import UTC, datetime

    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    out.print("Try:")
    out.print(
        f"  curl -s -X POST {url}/v1/events -H 'Authorization: Bearer {created['ingest']}' "
        "-H 'Content-Type: application/json' "
        '-d \'{"event_type": "page_view", "user_id": "u1", '
        f'"timestamp": "{now}", "data": {{"url": "/pricing"}}}}\''
    )
    if no_serve:
        services.close()
        return
    uvicorn.run(
        create_app(settings, services=services),
        host=host or settings.host,
        port=port or settings.port,
        access_log=False,
        log_level="warning",
    )


def main() -> None:
    """Entry point: run the CLI and map errors to exit codes."""
    try:
        app()
    except ConfigError as exc:
        err.print(f"configuration error: {exc.message}")
        sys.exit(2)
    except TastebudError as exc:
        err.print(f"error: {exc.message}")
        sys.exit(1)


if __name__ == "__main__":
    main()
