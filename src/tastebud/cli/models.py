"""``tastebud models ...``: the model registry from the command line."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated

import typer

from tastebud.cli import DataDirOpt, _services, _settings, app, out, print_table, prog
from tastebud.cli.train import cli_actor

if TYPE_CHECKING:
    from tastebud.registry import ModelVersion

__all__ = [
    "models_app",
    "models_approve",
    "models_archive",
    "models_compare",
    "models_list",
    "models_promote",
    "models_rollback",
    "models_show",
]

models_app = typer.Typer(
    help="The model registry: versions, checklists, approval, promotion and rollback.",
    no_args_is_help=True,
)
app.add_typer(models_app, name="models")

NameArg = Annotated[str, typer.Argument(help="Model name: recommendations, churn, conversion...")]
VersionArg = Annotated[int, typer.Argument(min=1, help="Version number")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def _when(ms: int | None) -> str:
    import time

    return "-" if ms is None else time.strftime("%Y-%m-%d %H:%M", time.gmtime(ms / 1000))


def _headline(mv: ModelVersion) -> str:
    test = mv.metrics.get("test") or {}
    for key in ("ndcg@10", "roc_auc"):
        if test.get(key) is not None:
            return f"{key} {test[key]:.4f}"
    return "-"


@models_app.command("list")
def models_list(as_json: JsonOpt = False, data_dir: DataDirOpt = None) -> None:
    """Every registered version with its aliases and headline held-out metric."""
    services = _services(_settings(data_dir))
    try:
        versions = services.registry.versions()
    finally:
        services.close()
    if as_json:
        out.print(json.dumps([v.model_dump(mode="json") for v in versions], indent=2))
        return
    if not versions:
        out.print(f"no models registered yet: run `{prog()} train --full`")
        return
    from rich.table import Table

    table = Table(
        "model",
        "version",
        "algorithm",
        "status",
        "aliases",
        "held-out metric",
        "created (UTC)",
        box=None,
        pad_edge=False,
    )
    table.columns[1].justify = "right"
    for v in versions:
        table.add_row(
            v.name,
            str(v.version),
            v.algorithm,
            v.status,
            ",".join(v.aliases) or "-",
            _headline(v),
            _when(v.created_ms),
        )
    print_table(table)


@models_app.command("show")
def models_show(
    name: NameArg, version: VersionArg, as_json: JsonOpt = False, data_dir: DataDirOpt = None
) -> None:
    """One version: metrics, lineage, approval and its governance checklist."""
    from tastebud.registry import checklist

    settings = _settings(data_dir)
    services = _services(settings)
    try:
        mv = services.registry.get(name, version)
        check = checklist(services.registry, mv, settings.governance)
    finally:
        services.close()
    if as_json:
        view = {**mv.model_dump(mode="json"), "checklist": check.model_dump(mode="json")}
        out.print(json.dumps(view, indent=2))
        return
    data = mv.lineage.get("data", {})
    out.print(
        f"{mv.name} v{mv.version} (revision {mv.revision}): {mv.algorithm}, {mv.status}, "
        f"aliases: {', '.join(mv.aliases) or 'none'}; artifact {mv.artifact_id}"
    )
    out.print(
        f"trained by the {mv.lineage.get('job', '?')} job at {_when(mv.created_ms)} on "
        f"{_when(data.get('window_start_ms'))} .. {_when(data.get('window_end_ms'))}; "
        f"{mv.lineage.get('code_version', '')}"
    )
    test = mv.metrics.get("test") or {}
    out.print(
        "held-out: " + ", ".join(f"{k} {v:.4f}" for k, v in test.items() if isinstance(v, float))
    )
    unchecked = [i.name for i in check.not_checked() if i.name != "approval"]
    verdict = (
        "PASSES"
        if check.passed
        else (
            "FAILS"
            if check.failing()
            else (
                f"INCOMPLETE: {', '.join(unchecked)} not checked (production needs a waiver: "
                f"--waive ITEM --reason TEXT)"
                if unchecked
                else "FAILS"
            )
        )
    )
    out.print(f"checklist: {verdict}")
    for item in check.items:
        mark = {"pass": "ok", "fail": "FAIL", "not_checked": "NOT CHECKED"}[item.status]
        out.print(f"  {mark:<12}{item.name:<20} {item.detail}")


@models_app.command("compare")
def models_compare(
    name: NameArg,
    versions: Annotated[
        list[int] | None, typer.Argument(help="Versions (default: all active)")
    ] = None,
    as_json: JsonOpt = False,
    data_dir: DataDirOpt = None,
) -> None:
    """Held-out metrics of several versions side by side."""
    from tastebud.registry import compare

    services = _services(_settings(data_dir))
    try:
        table = compare(services.registry, name, versions or None)
    finally:
        services.close()
    if as_json:
        out.print(table.model_dump_json(indent=2))
        return
    cols = [str(v.version) for v in table.versions]
    out.print(f"{'metric':<16}" + "".join(f"{'v' + c:>10}" for c in cols))
    for metric, values in table.metrics.items():
        cells = "".join(
            f"{values[c]:>10.4f}" if isinstance(values.get(c), float) else f"{'-':>10}"
            for c in cols
        )
        out.print(f"{metric:<16}{cells}")


@models_app.command("approve")
def models_approve(
    name: NameArg,
    version: VersionArg,
    note: Annotated[str | None, typer.Option(help="Recorded with the approval.")] = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Record your approval of a version (recorded as cli:<your user> with the time)."""
    services = _services(_settings(data_dir))
    try:
        mv = services.registry.approve(name, version, actor=cli_actor(), note=note)
    finally:
        services.close()
    assert mv.approval is not None
    out.print(f"approved {name} v{version} as {mv.approval.by}")


@models_app.command("promote")
def models_promote(
    name: NameArg,
    version: VersionArg,
    alias: Annotated[str, typer.Option(help="candidate, staging or production")] = "production",
    force: Annotated[
        bool, typer.Option("--force", help="Promote despite a failing checklist (needs --reason)")
    ] = False,
    waive: Annotated[
        list[str] | None,
        typer.Option(
            help="A checklist item that could not be checked, accepted anyway "
            "(repeatable; needs --reason, recorded)."
        ),
    ] = None,
    reason: Annotated[str | None, typer.Option(help="Why (recorded).")] = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Point an alias at a version. Production requires every checklist item to pass: an item
    that could not be checked may be waived (--waive ITEM --reason TEXT), anything else that
    fails needs --force --reason TEXT (both recorded). API processes serve it within
    seconds."""
    from tastebud.registry import promote

    settings = _settings(data_dir)
    services = _services(settings)
    try:
        promote(
            services.registry,
            settings.governance,
            name,
            version,
            actor=cli_actor(),
            alias=alias,
            force=force,
            reason=reason,
            waive=tuple(waive or ()),
        )
    finally:
        services.close()
    how = " (forced)" if force else (f" (waived: {', '.join(waive)})" if waive else "")
    out.print(f"{name} v{version} is now {alias}{how}")


@models_app.command("rollback")
def models_rollback(
    name: NameArg,
    reason: Annotated[str | None, typer.Option(help="Why (recorded).")] = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Return production to the previous production version."""
    from tastebud.registry import rollback

    services = _services(_settings(data_dir))
    try:
        mv = rollback(services.registry, name, actor=cli_actor(), reason=reason)
    finally:
        services.close()
    out.print(f"{name}: production is v{mv.version} again")


@models_app.command("archive")
def models_archive(
    name: NameArg,
    version: VersionArg,
    reason: Annotated[str | None, typer.Option(help="Why (recorded).")] = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Archive a version that is not in production (kept for audits; never served again)."""
    services = _services(_settings(data_dir))
    try:
        services.registry.archive(name, version, actor=cli_actor(), reason=reason)
    finally:
        services.close()
    out.print(f"archived {name} v{version}")
