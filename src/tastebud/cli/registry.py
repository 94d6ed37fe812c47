"""``tastebud models ...``: the model registry from the command line."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from tastebud.cli import DataDirOpt, _services, _settings, app, out
from tastebud.cli.models import cli_actor

__all__ = ["models_app"]

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


def _headline(metrics: dict[str, Any]) -> str:
    test = metrics.get("test") or {}
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
        out.print(json.dumps([v.to_json() for v in versions], indent=2))
        return
    if not versions:
        out.print("no models registered yet: run `tastebud train --full`")
        return
    out.print(f"{'model':<18}{'version':>8}  {'algorithm':<28}{'status':<10}{'aliases':<22}"
              f"{'metric':<18}created")  # fmt: skip
    for v in versions:
        out.print(f"{v.name:<18}{v.version:>8}  {v.algorithm[:27]:<28}{v.status:<10}"
                  f"{','.join(v.aliases) or '-':<22}{_headline(v.metrics):<18}"
                  f"{_when(v.created_ms)}")  # fmt: skip


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
        out.print(json.dumps({**mv.to_json(), "checklist": check.to_json()}, indent=2))
        return
    data = mv.lineage.get("data", {})
    out.print(f"{mv.name} v{mv.version} (revision {mv.revision}): {mv.algorithm}, {mv.status}, "
              f"aliases: {', '.join(mv.aliases) or 'none'}; artifact {mv.artifact_id}")  # fmt: skip
    out.print(f"trained by the {mv.lineage.get('job', '?')} job at {_when(mv.created_ms)} on "
              f"{_when(data.get('window_start_ms'))} .. {_when(data.get('window_end_ms'))}; "
              f"{mv.lineage.get('code_version', '')}")  # fmt: skip
    test = mv.metrics.get("test") or {}
    out.print("held-out: " + ", ".join(f"{k} {v:.4f}" for k, v in test.items()
                                       if isinstance(v, float)))  # fmt: skip
    out.print(f"checklist: {'PASSES' if check.passed else 'FAILS'}")
    for item in check.items:
        out.print(f"  {'ok' if item.passed else 'FAIL':<5}{item.name:<20} {item.detail}")


@models_app.command("compare")
def models_compare(
    name: NameArg,
    versions: Annotated[list[int] | None, typer.Argument(help="Versions (default: all active)")]
    = None,
    as_json: JsonOpt = False,
    data_dir: DataDirOpt = None,
) -> None:  # fmt: skip
    """Held-out metrics of several versions side by side."""
    services = _services(_settings(data_dir))
    try:
        table = services.registry.compare(name, versions or None)
    finally:
        services.close()
    if as_json:
        out.print(json.dumps(table, indent=2))
        return
    cols = [str(v["version"]) for v in table["versions"]]
    out.print(f"{'metric':<16}" + "".join(f"{'v' + c:>10}" for c in cols))
    for metric, values in table["metrics"].items():
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
    out.print(f"approved {name} v{version} as {mv.approval['by']}")


@models_app.command("promote")
def models_promote(
    name: NameArg,
    version: VersionArg,
    alias: Annotated[str, typer.Option(help="candidate, staging or production")] = "production",
    force: Annotated[
        bool, typer.Option("--force", help="Promote despite a failing checklist (needs --reason)")
    ] = False,
    reason: Annotated[str | None, typer.Option(help="Why (recorded).")] = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Point an alias at a version. Production requires every checklist item to pass, or
    --force --reason TEXT (recorded). API processes serve it within seconds."""
    from tastebud.registry import promote

    settings = _settings(data_dir)
    services = _services(settings)
    try:
        promote(services.registry, settings.governance, name, version, actor=cli_actor(),
                alias=alias, force=force, reason=reason)  # fmt: skip
    finally:
        services.close()
    out.print(f"{name} v{version} is now {alias}" + (" (forced)" if force else ""))


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
