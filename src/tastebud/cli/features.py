"""``tastebud features list|build``: feature definitions and point-in-time snapshots."""

from __future__ import annotations

from typing import Annotated

import orjson
import typer

from tastebud.cli import (
    DataDirOpt,
    _services,
    _settings,
    _spinner,
    features_app,
    out,
    print_table,
)

__all__ = ["features_build", "features_list"]


@features_app.command("list")
def features_list(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """List every feature: name, version, type, entity, owner, deprecated flag, meaning."""
    from rich.table import Table

    from tastebud.features import FEATURES

    if as_json:
        print(orjson.dumps([vars(f) for f in FEATURES], option=orjson.OPT_INDENT_2).decode())
        return
    table = Table(
        "feature", "version", "type", "entity", "owner", "meaning", box=None, pad_edge=False
    )
    table.columns[-1].overflow = "fold"
    for f in FEATURES:
        flag = " (deprecated)" if f.deprecated else ""
        table.add_row(f.name, f"v{f.version}", f.kind, f.entity, f.owner + flag, f.description)
    print_table(table)


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
    import warnings

    from tastebud.errors import DataWarning
    from tastebud.features import FeatureBuildConfig, build_snapshot

    services = _services(_settings(data_dir))
    as_of_ms = _parse_time(as_of) if as_of else None
    try:
        with _spinner() as spinner:
            spinner.add_task("building the feature snapshot", total=None)
            config = FeatureBuildConfig(memory_budget_events=budget)
            with warnings.catch_warnings():
                # Printed below as ``warning:`` lines, with the counts, once each.
                warnings.simplefilter("ignore", DataWarning)
                result = build_snapshot(services.store, as_of_ms=as_of_ms, config=config)
    finally:
        services.close()
    for r in result.reports:
        removed = ", ".join(f"{n:,} {why}" for why, n in r.removed.items()) or "none removed"
        out.print(f"  {r.stage:<18} {r.rows_in:>12,} in {r.rows_out:>12,} out  ({removed})")
    for w in result.warnings:
        out.print(f"  warning: {w}")
    out.print(
        f"snapshot {result.snapshot_id}: {result.n_users:,} users, {result.n_items:,} items "
        f"from {result.n_events:,} events in {result.seconds:.1f} s"
    )
