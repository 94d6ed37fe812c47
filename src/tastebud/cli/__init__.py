"""The ``tastebud`` command. Subcommands follow the pipeline; ``--help`` on each explains it.

Exit codes: 0 success, 1 a Tastebud error (message on stderr), 2 a configuration error or bad
usage, 130 stopped by Ctrl+C.

Importing this package stays light (typer, rich, orjson and Tastebud's error classes): every
command imports what it needs (settings, the database, NumPy, the API, the training stack)
inside its function, so ``tastebud --help`` and ``--version`` answer at once and each command
pays only for what it uses. ``tests/test_cli.py`` checks that the heavy libraries stay out.
"""

from __future__ import annotations

import importlib
import sys
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import orjson
import typer
from rich.console import Console

from tastebud import __version__
from tastebud.cli._hints import activation_note, hint, prog
from tastebud.errors import ConfigError, TastebudError

if TYPE_CHECKING:
    from rich.progress import Progress

    from tastebud.config import Settings
    from tastebud.services import Services

__all__ = [
    "DataDirOpt",
    "activation_note",
    "app",
    "db_app",
    "err",
    "features_app",
    "hint",
    "import_app",
    "ingest",
    "keys_app",
    "main",
    "out",
    "print_table",
    "prog",
    "serve",
    "simulate",
    "simulate_counts",
]

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
app.add_typer(db_app, name="db")  # its commands: cli/keys.py
app.add_typer(keys_app, name="keys")  # its commands: cli/keys.py
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
app.add_typer(features_app, name="features")  # its commands: cli/features.py

err = Console(stderr=True, soft_wrap=True)
out = Console(highlight=False, soft_wrap=True)

DataDirOpt = Annotated[
    Path | None,
    typer.Option(
        "--data-dir", help="Data directory (default: $TASTEBUD_DATA_DIR or ./tastebud-data)"
    ),
]


def _settings(data_dir: Path | None = None, **overrides: Any) -> Settings:
    from pydantic import ValidationError

    from tastebud.config import Settings
    from tastebud.errors import ConfigError

    if data_dir is not None:
        overrides["data_dir"] = data_dir
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        # One line per bad field, naming it and its TASTEBUD_* variable (no traceback).
        raise ConfigError.from_validation(exc, env_prefix="TASTEBUD_") from None


def _services(settings: Settings, migrate: bool | None = None) -> Services:
    from tastebud.monitoring import configure_logging
    from tastebud.services import build_services

    configure_logging(
        "WARNING" if settings.log_level == "INFO" else settings.log_level, json=settings.log_json
    )
    return build_services(settings, migrate=migrate)


def print_table(table: Any) -> None:
    """Print a rich ``Table`` on stdout: fitted to a terminal's width, else one line per row
    (a pipe or a file gets rows that ``grep`` and ``awk`` can read)."""
    if out.is_terminal:
        out.print(table)
        return
    Console(highlight=False, width=10_000).print(table)


# -- progress ---------------------------------------------------------------------------------
def _progress() -> Progress:
    """Progress on stderr: spinner, description, bar, ``done / total`` (``done`` without a
    total; nothing for a step without a count), elapsed time."""
    from rich.progress import (
        BarColumn,
        ProgressColumn,
        SpinnerColumn,
        Task,
        TextColumn,
        TimeElapsedColumn,
    )
    from rich.progress import Progress as _Progress
    from rich.text import Text

    class _CountColumn(ProgressColumn):
        def render(self, task: Task) -> Text:
            if task.total is None:
                return Text(f"{int(task.completed):,}" if task.completed else "")
            return Text(f"{int(task.completed):,} / {int(task.total):,}")

    return _Progress(
        SpinnerColumn(finished_text=" "),
        TextColumn("{task.description}"),
        BarColumn(),
        _CountColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=False,
    )


def _spinner() -> Progress:
    """A one-line status on stderr for a step without a count: spinner, what runs, elapsed
    time; gone when the step ends."""
    from rich.progress import Progress as _Progress
    from rich.progress import SpinnerColumn, TextColumn, TimeElapsedColumn

    return _Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    )


@app.callback(invoke_without_command=True)
def _root(
    version: Annotated[bool, typer.Option("--version", help="Print the version and exit.")] = False,
) -> None:
    if version:
        out.print(f"tastebud {__version__}")
        raise typer.Exit()


# -- ingest -----------------------------------------------------------------------------------
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
        str | None,
        typer.Option(help="API key for --send (admin also sends the catalogue and the users)."),
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
    from tastebud.files import open_private, write_private

    # Simulated people, but shaped like real ones: written as any personal data is (0600).
    if truth is not None:
        write_private(truth, orjson.dumps(sim.truth(), option=orjson.OPT_INDENT_2))
    if items_out is not None:
        write_private(items_out, b"".join(orjson.dumps(i) + b"\n" for i in sim.items()))
    if users_out is not None:
        write_private(users_out, b"".join(orjson.dumps(u) + b"\n" for u in sim.users()))
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
                with open_private(out_file) as fh:
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


@app.command("simulate-counts")
def simulate_counts(
    out_file: Annotated[
        Path,
        typer.Option(
            "--out", help="Write the TSV here ('-' for stdout): user, item, count, with a header."
        ),
    ],
    users: Annotated[int, typer.Option(help="Number of users.")] = 1900,
    items: Annotated[int, typer.Option(help="Catalogue size.")] = 18_000,
    max_per_user: Annotated[int, typer.Option(help="Most items a user lists.")] = 50,
    seed: Annotated[int, typer.Option(help="Same seed, same output.")] = 0,
    order: Annotated[
        Literal["count", "item", "random"],
        typer.Option(help="Order of each user's rows: count (highest first), item id, random."),
    ] = "count",
) -> None:
    """Simulate implicit play counts without time, shaped like Last.fm's hetrec-2011 artists
    (most users list exactly --max-per-user items; most items have a single listener), with
    planted communities, scenes of items that go together and heavy-tailed counts. Import it
    with `tastebud import interactions FILE --user user --item item --weight count`."""
    from pydantic import ValidationError

    from tastebud.errors import InvalidInput
    from tastebud.simulator import CountsConfig, generate_counts, write_counts_tsv

    try:
        config = CountsConfig(users=users, items=items, max_per_user=max_per_user, seed=seed)
    except ValidationError as exc:
        raise typer.BadParameter(InvalidInput.from_validation(exc).message) from None
    data = generate_counts(config)  # a second or two at the defaults
    # Simulated people, but shaped like real ones: a path is written as personal data is (0600).
    write_counts_tsv(data, sys.stdout.buffer if str(out_file) == "-" else out_file, order=order)
    err.print(data.stats().summary(), markup=False, highlight=False)


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


def _send(sim: Any, url: str, key: str, *, events: bool = True) -> Any:
    """Send the simulation's catalogue and user attributes (admin keys only) and, unless
    ``events`` is false, its events; returns the events' ``SendSummary`` (or ``None``)."""
    from tastebud.client import Client, ClientError

    with Client(url, key) as tb:
        try:
            created = tb.put_items(list(sim.items()))
            err.print(f"catalogue: {created:,} items sent")
            with _progress() as progress:
                task = progress.add_task("sending user attributes", total=sim.config.users)
                written = tb.put_users(_advancing(sim.users(), lambda: progress.advance(task)))
            err.print(f"user attributes: {written:,} users sent")
        except ClientError as exc:
            if exc.status != 403:
                raise
            err.print("catalogue and users not sent: the key is not an admin key (events only)")
        if not events:
            return None
        with _progress() as progress:
            task = progress.add_task(f"sending events to {url}", total=None)
            return tb.send(sim.events(), on_batch=lambda n: progress.advance(task, n))


def _advancing(rows: Any, tick: Any) -> Any:
    """``rows``, calling ``tick()`` after each (a progress bar for one-at-a-time uploads)."""
    for row in rows:
        yield row
        tick()


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

    from tastebud.config import Settings

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


# Commands that live in their own modules register themselves on ``app`` when imported, in
# this order, which is the order of ``tastebud --help``. Each keeps its heavy imports inside
# its functions.
for _module in (
    "features",
    "imports",
    "keys",
    "train",
    "predictors",
    "privacy",
    "pseudonym",
    "quickstart",
    "recommend",
    "models",
    "experiments",
    "rights",
    "worker",
):
    importlib.import_module(f"tastebud.cli.{_module}")


def main() -> None:
    """Entry point: run the CLI and map errors to exit codes."""
    try:
        app()
    except ConfigError as exc:
        err.print(hint(f"configuration error: {exc.message}"), markup=False, highlight=False)
        sys.exit(2)
    except TastebudError as exc:
        err.print(hint(f"error: {exc.message}"), markup=False, highlight=False)
        sys.exit(1)
    except Exception as exc:
        # The client is imported only by the commands that talk to a server.
        client = sys.modules.get("tastebud.client")
        if client is None or not isinstance(exc, client.ClientError):
            raise
        err.print(f"error from the server: {exc}", markup=False, highlight=False)
        sys.exit(1)


if __name__ == "__main__":
    main()
