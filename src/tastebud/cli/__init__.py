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
from rich.progress import BarColumn, Progress, ProgressColumn, Task, TextColumn, TimeElapsedColumn
from rich.text import Text

from tastebud import __version__
from tastebud.apikeys import SCOPES
from tastebud.client import ClientError
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
import_app = typer.Typer(
    help="Import datasets: MovieLens, any interactions file, item catalogues, user attributes.",
    no_args_is_help=True,
    rich_markup_mode="markdown",
)
app.add_typer(import_app, name="import")  # its commands: cli/imports.py
features_app = typer.Typer(
    help="Features: definitions and point-in-time snapshots.",
    no_args_is_help=True,
    rich_markup_mode="markdown",
)
app.add_typer(features_app, name="features")

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
class _CountColumn(ProgressColumn):
    """``done / total`` when the total is known, else just ``done``."""

    def render(self, task: Task) -> Text:
        if task.total is None:
            return Text(f"{int(task.completed):,}")
        return Text(f"{int(task.completed):,} / {int(task.total):,}")


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        _CountColumn(),
        TimeElapsedColumn(),
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


@app.command("simulate")
def simulate(
    users: Annotated[int, typer.Option(min=1, help="Number of users.")] = 1000,
    items: Annotated[int, typer.Option(min=12, help="Catalogue size.")] = 2000,
    days: Annotated[int, typer.Option(min=1, help="Days of traffic.")] = 30,
    seed: Annotated[int, typer.Option(help="Same seed, same output.")] = 0,
    start: Annotated[
        str | None,
        typer.Option(help="First day, YYYY-MM-DD (default 2026-01-01; 'recent' ends today)."),
    ] = None,
    out_file: Annotated[
        Path | None, typer.Option("--out", help="Write events as NDJSON ('-' for stdout).")
    ] = None,
    send: Annotated[
        str | None, typer.Option(help="Send events to a running server at this URL.")
    ] = None,
    key: Annotated[
        str | None, typer.Option(help="API key for --send (admin also sends the catalogue).")
    ] = None,
    truth: Annotated[
        Path | None, typer.Option(help="Write the planted tastes, churn and habits as JSON.")
    ] = None,
    items_out: Annotated[
        Path | None, typer.Option(help="Write the catalogue as NDJSON (for 'import items').")
    ] = None,
    users_out: Annotated[
        Path | None, typer.Option(help="Write user attributes as NDJSON (for 'import users').")
    ] = None,
    workers: Annotated[int, typer.Option(min=1, help="Processes generating events for --out.")] = 2,
) -> None:
    """Simulate NetworkBuster traffic: users with planted tastes, devices, habits, skill and
    churn; sessions of page views, clicks, searches, engagement, ratings, performance and
    business events. Deterministic for a seed."""
    from tastebud.simulator import SimConfig, Simulator

    if (
        out_file is None
        and send is None
        and truth is None
        and items_out is None
        and users_out is None
    ):
        raise typer.BadParameter(
            "give --out FILE, --send URL (with --key), --truth, --items-out or --users-out"
        )
    if send is not None and key is None:
        raise typer.BadParameter("--send needs --key")
    sim = Simulator(
        SimConfig(users=users, items=items, days=days, seed=seed, start=_start_date(start, days))
    )
    if truth is not None:
        truth.write_bytes(orjson.dumps(sim.truth(), option=orjson.OPT_INDENT_2))
    if items_out is not None:
        items_out.write_bytes(b"".join(orjson.dumps(i) + b"\n" for i in sim.items()))
    if users_out is not None:
        users_out.write_bytes(b"".join(orjson.dumps(u) + b"\n" for u in sim.users()))
    if out_file is not None:
        from tastebud.simulator import write_ndjson

        with _progress() as progress:
            task = progress.add_task("simulating", total=None)
            if str(out_file) == "-":
                n = write_ndjson(
                    sim,
                    sys.stdout.buffer,
                    workers=workers,
                    progress=lambda k: progress.advance(task, k),
                )
            else:
                with out_file.open("wb") as fh:
                    n = write_ndjson(
                        sim, fh, workers=workers, progress=lambda k: progress.advance(task, k)
                    )
        err.print(f"{n:,} events written")
    if send is not None:
        assert key is not None
        summary = _send(sim, send, key)
        out.print(
            f"{summary.accepted:,} events accepted, {summary.duplicates:,} duplicates, "
            f"{summary.rejected:,} rejected"
        )


def _start_date(start: str | None, days: int) -> Any:
    from datetime import UTC, datetime, timedelta

    if start is None:
        return datetime(2026, 1, 1, tzinfo=UTC)
    if start == "recent":
        today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        return today - timedelta(days=days + 1)  # ends yesterday: no event in the future
    try:
        return datetime.strptime(start, "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        raise typer.BadParameter("--start must be YYYY-MM-DD or 'recent'") from None


def _send(sim: Any, url: str, key: str) -> Any:
    from tastebud.client import Client, ClientError

    with Client(url, key) as tb:
        try:
            created = tb.put_items(list(sim.items()))
            err.print(f"catalogue: {created:,} items sent")
        except ClientError as exc:
            if exc.status != 403:
                raise
            err.print("catalogue not sent: the key is not an admin key (events only)")
        with _progress() as progress:
            task = progress.add_task(f"sending to {url}", total=None)
            return tb.send(sim.events(), on_batch=lambda n: progress.advance(task, n))


# -- features ---------------------------------------------------------------------------------
@features_app.command("list")
def features_list(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """List every feature: name, version, type, entity, owner, deprecated flag, meaning."""
    from tastebud.features import FEATURES

    if as_json:
        print(orjson.dumps([vars(f) for f in FEATURES], option=orjson.OPT_INDENT_2).decode())
        return
    for f in FEATURES:
        flag = " (deprecated)" if f.deprecated else ""
        out.print(
            f"{f.name:<28} v{f.version}  {f.kind:<8} {f.entity:<7} {f.owner}{flag}: {f.description}"
        )


def _parse_time(value: str) -> int:
    from datetime import UTC, datetime

    try:
        t = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not an ISO-8601 time") from None
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return int(t.timestamp() * 1000)


@features_app.command("build")
def features_build(
    as_of: Annotated[
        str | None,
        typer.Option(
            help="Snapshot time, ISO-8601 (default: now). Only events before it are used."
        ),
    ] = None,
    budget: Annotated[
        int,
        typer.Option(
            min=1, help="Events held in memory at once; above it users are processed in ranges."
        ),
    ] = 2_000_000,
    data_dir: DataDirOpt = None,
) -> None:
    """Materialize a point-in-time snapshot of every feature into the database, with per-feature
    statistics (null rate, range, quantiles, histogram) and the pipeline's stage reports."""
    from tastebud.features import FeatureBuildConfig, build_snapshot

    services = _services(_settings(data_dir))
    as_of_ms = _parse_time(as_of) if as_of else None
    result = build_snapshot(
        services.store, as_of_ms=as_of_ms, config=FeatureBuildConfig(memory_budget_events=budget)
    )
    for r in result.reports:
        removed = ", ".join(f"{n:,} {why}" for why, n in r.removed.items()) or "none removed"
        out.print(f"  {r.stage:<18} {r.rows_in:>12,} in {r.rows_out:>12,} out  ({removed})")
    for w in result.warnings:
        out.print(f"  warning: {w}")
    out.print(
        f"snapshot {result.snapshot_id}: {result.n_users:,} users, {result.n_items:,} items "
        f"from {result.n_events:,} events in {result.seconds:.1f} s"
    )


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


# Commands that live in their own modules register themselves on ``app`` when imported.
from tastebud.cli import imports as _imports  # noqa: E402, F401
from tastebud.cli import models as _models  # noqa: E402, F401
from tastebud.cli import predictors as _predictors  # noqa: E402, F401
from tastebud.cli import privacy as _privacy  # noqa: E402, F401
from tastebud.cli import quickstart as _quickstart  # noqa: E402, F401
from tastebud.cli import recommend as _recommend  # noqa: E402, F401
from tastebud.cli import registry as _registry  # noqa: E402, F401
from tastebud.cli import rights as _rights  # noqa: E402, F401
from tastebud.cli import worker as _worker  # noqa: E402, F401


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
    except ClientError as exc:
        err.print(f"error from the server: {exc}")
        sys.exit(1)


if __name__ == "__main__":
    main()
