"""``tastebud import``: MovieLens, any interactions file, item catalogues and user attributes."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from tastebud.cli import DataDirOpt, _progress, _services, _settings, import_app, out

__all__ = [
    "import_interactions_cmd",
    "import_items_cmd",
    "import_movielens_cmd",
    "import_users_cmd",
]


def _report(summary: Any) -> None:
    for line in summary.details():
        out.print(f"  {line}")
    out.print(summary.line())


@import_app.command("movielens")
def import_movielens_cmd(
    directory: Annotated[
        Path,
        typer.Argument(
            help="A MovieLens 100K directory (u.data, u.item, u.user).",
            exists=True,
            file_okay=False,
        ),
    ],
    data_dir: DataDirOpt = None,
) -> None:
    """Import MovieLens 100K: every rating becomes a `rating` event at its timestamp, `u.item`
    fills the catalogue (genres as categories), `u.user` the user attributes. Safe to re-run."""
    from tastebud.importers import import_movielens
    from tastebud.importers.movielens import count_lines

    services = _services(_settings(data_dir))
    with _progress() as progress:
        task = progress.add_task("importing ratings", total=count_lines(directory))
        summary = import_movielens(
            directory,
            services.ingestor,
            services.catalog,
            services.pseudonymizer,
            progress=lambda n: progress.advance(task, n),
        )
    _report(summary)


@import_app.command("interactions")
def import_interactions_cmd(
    file: Annotated[
        Path,
        typer.Argument(
            help="CSV/TSV of interactions (with or without header).", exists=True, dir_okay=False
        ),
    ],
    user: Annotated[str, typer.Option(help="User column: header name or 1-based number.")],
    item: Annotated[str, typer.Option(help="Item column: header name or 1-based number.")],
    time: Annotated[
        str | None, typer.Option(help="Time column (optional; without it rows keep file order).")
    ] = None,
    weight: Annotated[
        str | None, typer.Option(help="Weight column (the rating value with --type rating).")
    ] = None,
    type_: Annotated[str, typer.Option("--type", help="Event type for every row.")] = "interaction",
    delimiter: Annotated[
        str | None,
        typer.Option(help="Field separator, e.g. ',', 'tab', 'space' (default: sniffed)."),
    ] = None,
    time_format: Annotated[str, typer.Option(help="auto, unix or iso.")] = "auto",
    header: Annotated[
        bool | None,
        typer.Option("--header/--no-header", help="Whether line 1 is a header (default: guessed)."),
    ] = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Import any file of user-item interactions (MovieLens latest, Last.fm play counts, ...).
    Bad rows are counted and reported with line numbers, never fatal. Safe to re-run."""
    from tastebud.errors import InvalidInput
    from tastebud.importers import InteractionSpec, import_interactions
    from tastebud.importers.interactions import count_rows

    if time_format not in ("auto", "unix", "iso"):
        raise InvalidInput("--time-format must be auto, unix or iso")
    spec = InteractionSpec(
        user=user,
        item=item,
        time=time,
        weight=weight,
        event_type=type_,
        delimiter=delimiter,
        time_format=time_format,  # type: ignore[arg-type]
        header=header,
    )
    services = _services(_settings(data_dir))
    with _progress() as progress:
        task = progress.add_task(f"importing {file.name}", total=count_rows(file))
        summary = import_interactions(
            file,
            spec,
            services.ingestor,
            services.pseudonymizer,
            progress=lambda n: progress.advance(task, n),
        )
    _report(summary)


def _table_report(summary: Any) -> None:
    for n, reason in summary.rejected[:10]:
        out.print(f"  line {n}: {reason}")
    if len(summary.rejected) > 10:
        out.print(f"  ... and {len(summary.rejected) - 10:,} more rejected rows")
    out.print(summary.line())


@import_app.command("items")
def import_items_cmd(
    file: Annotated[
        Path, typer.Argument(help="CSV with a header, or NDJSON.", exists=True, dir_okay=False)
    ],
    data_dir: DataDirOpt = None,
) -> None:
    """Import an item catalogue: `item_id`, `title`, `category`, `categories` (`|`-separated),
    `type`, `created_at`, `hidden`; other columns become attributes."""
    from tastebud.importers import import_items

    services = _services(_settings(data_dir))
    _table_report(import_items(file, services.catalog))


@import_app.command("users")
def import_users_cmd(
    file: Annotated[
        Path, typer.Argument(help="CSV with a header, or NDJSON.", exists=True, dir_okay=False)
    ],
    data_dir: DataDirOpt = None,
) -> None:
    """Import user attributes: `user_id`, `segment`, `skill_level`, `interests`
    (`|`-separated), `age_bucket`, `gender`, `occupation`, `region`, `locale`, `country`; other
    columns are kept as attributes. User ids are stored only as pseudonyms."""
    from tastebud.importers import import_users

    services = _services(_settings(data_dir))
    _table_report(import_users(file, services.catalog))


# -- simulate ---------------------------------------------------------------------------------
