"""``tastebud experiments ...``: A/B tests and interleaving from the command line
(docs/experiments.md)."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from tastebud.cli import DataDirOpt, _services, _settings, app, out, print_table, prog
from tastebud.cli.train import cli_actor

if TYPE_CHECKING:
    from tastebud.experiments import Experiment, ExperimentSpec
    from tastebud.experiments.analysis import ExperimentResults

__all__ = [
    "experiments_app",
    "experiments_conclude",
    "experiments_create",
    "experiments_list",
    "experiments_ramp",
    "experiments_results",
    "experiments_sample_size",
    "experiments_show",
    "experiments_start",
    "experiments_stop",
    "experiments_update",
]

experiments_app = typer.Typer(
    help="Experiments: A/B tests and interleaving inside serving, with their results.",
    no_args_is_help=True,
)
app.add_typer(experiments_app, name="experiments")

_NameArg = Annotated[str, typer.Argument(help="Experiment name")]
_JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]


def _when(ms: int | None) -> str:
    import time

    return "-" if ms is None else time.strftime("%Y-%m-%d %H:%M", time.gmtime(ms / 1000))


def _read_spec(file: Path) -> ExperimentSpec:
    """The spec in a TOML file; a clear error naming the problem otherwise."""
    from pydantic import ValidationError

    from tastebud.errors import InvalidInput
    from tastebud.experiments import ExperimentSpec

    try:
        raw = tomllib.loads(file.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise InvalidInput(f"{file}: not valid TOML ({exc})") from None
    try:
        return ExperimentSpec.model_validate(raw)
    except ValidationError as exc:
        raise InvalidInput.from_validation(exc) from None


def _line(exp: Experiment) -> str:
    spec = exp.spec
    variants = ", ".join(f"{v.name} ({v.weight:g})" for v in spec.variants)
    return (
        f"{exp.name}: {exp.status.value}, {spec.kind}, layer {spec.layer}, traffic "
        f"{spec.traffic:.0%}, variants {variants}; primary {spec.primary_metric.value}"
    )


_SpecFile = Annotated[
    Path,
    typer.Argument(
        help="TOML file with the experiment's spec (docs/experiments.md has an example).",
        exists=True,
        dir_okay=False,
        readable=True,
    ),
]


def _save(file: Path, data_dir: Path | None, *, new: bool) -> Experiment:
    """Store the spec in ``file``: as a new draft, or over the draft of its name."""
    spec = _read_spec(file)
    services = _services(_settings(data_dir))
    try:
        store = services.experiments.create if new else services.experiments.update
        return store(spec, actor=cli_actor())
    finally:
        services.close()


@experiments_app.command("create")
def experiments_create(file: _SpecFile, data_dir: DataDirOpt = None) -> None:
    """Create a draft experiment from a TOML file."""
    exp = _save(file, data_dir, new=True)
    out.print(f"created {_line(exp)}")
    out.print(f"start it with: {prog()} experiments start {exp.name}")


@experiments_app.command("update")
def experiments_update(file: _SpecFile, data_dir: DataDirOpt = None) -> None:
    """Replace a draft's spec, the same name (a started experiment only changes its traffic:
    ``ramp``)."""
    exp = _save(file, data_dir, new=False)
    out.print(f"updated {_line(exp)}")


@experiments_app.command("list")
def experiments_list(as_json: _JsonOpt = False, data_dir: DataDirOpt = None) -> None:
    """Every experiment, newest first."""
    services = _services(_settings(data_dir))
    try:
        found = services.experiments.all()
    finally:
        services.close()
    if as_json:
        import orjson

        rows = [
            {
                "name": e.name,
                "status": e.status.value,
                "kind": e.spec.kind,
                "layer": e.spec.layer,
                "traffic": e.spec.traffic,
                "variants": [v.name for v in e.spec.variants],
                "started_ms": e.started_ms,
                "winner": e.winner,
            }
            for e in found
        ]
        out.print(orjson.dumps(rows).decode(), markup=False)
        return
    if not found:
        out.print(f"no experiments yet: {prog()} experiments create FILE.toml")
        return
    from rich.table import Table

    table = Table("name", "status", "kind", "layer", "traffic", "variants", "started", "winner")
    for e in found:
        table.add_row(
            e.name,
            e.status.value,
            e.spec.kind,
            e.spec.layer,
            f"{e.spec.traffic:.0%}",
            ", ".join(v.name for v in e.spec.variants),
            _when(e.started_ms),
            e.winner or "-",
        )
    print_table(table)


@experiments_app.command("show")
def experiments_show(
    name: _NameArg, as_json: _JsonOpt = False, data_dir: DataDirOpt = None
) -> None:
    """One experiment's spec, status and audit log."""
    import orjson

    services = _services(_settings(data_dir))
    try:
        exp = services.experiments.get(name)
        log = services.experiments.log(name)
    finally:
        services.close()
    if as_json:
        doc = {
            "name": exp.name,
            "status": exp.status.value,
            "spec": exp.spec.model_dump(mode="json"),
            "layer_range": None if exp.layer_lo is None else [exp.layer_lo, exp.layer_hi],
            "winner": exp.winner,
            "log": log,
        }
        out.print(orjson.dumps(doc).decode(), markup=False)
        return
    out.print(_line(exp), markup=False)
    out.print(f"hypothesis: {exp.spec.hypothesis}", markup=False)
    for entry in log:
        out.print(f"  {_when(int(str(entry['at_ms'])))}  {entry['action']:<9} {entry['actor']}")


@experiments_app.command("start")
def experiments_start(name: _NameArg, data_dir: DataDirOpt = None) -> None:
    """Start a draft: every API process serves it within ``experiment_poll_seconds``."""
    services = _services(_settings(data_dir))
    try:
        exp = services.experiments.start(name, actor=cli_actor())
    finally:
        services.close()
    out.print(f"started {_line(exp)}")
    out.print(f"see its results with: {prog()} experiments results {name}")


@experiments_app.command("ramp")
def experiments_ramp(
    name: _NameArg,
    traffic: Annotated[float, typer.Argument(min=0, max=1, help="Share exposed, 0 to 1")],
    data_dir: DataDirOpt = None,
) -> None:
    """Change the exposed share of a draft or running experiment (nobody assigned moves)."""
    services = _services(_settings(data_dir))
    try:
        exp = services.experiments.ramp(name, traffic, actor=cli_actor())
    finally:
        services.close()
    out.print(f"ramped {_line(exp)}")


@experiments_app.command("stop")
def experiments_stop(
    name: _NameArg,
    reason: Annotated[str | None, typer.Option(help="Why (recorded)")] = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Stop serving a running experiment (results stay readable)."""
    services = _services(_settings(data_dir))
    try:
        exp = services.experiments.stop(name, actor=cli_actor(), reason=reason)
    finally:
        services.close()
    out.print(f"stopped {_line(exp)}")


@experiments_app.command("conclude")
def experiments_conclude(
    name: _NameArg,
    winner: Annotated[str | None, typer.Option(help="The winning variant")] = None,
    promote: Annotated[
        bool, typer.Option(help="Promote the winner's model version (its checklist applies)")
    ] = False,
    reason: Annotated[str | None, typer.Option(help="Why (recorded)")] = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Record the decision; with ``--promote`` the winner's model version goes to production."""
    from tastebud.experiments.repository import conclude

    services = _services(_settings(data_dir))
    try:
        done, version = conclude(
            services.experiments,
            services.settings.governance,
            name,
            winner,
            actor=cli_actor(),
            promote=promote,
            reason=reason,
        )
    finally:
        services.close()
    out.print(f"concluded {name}: winner {done.winner or 'none'}")
    if version is not None:
        out.print(f"recommendations v{version} is now in production")


def _render(results: ExperimentResults) -> list[str]:
    lines = [
        f"{results.experiment} ({results.kind}, {results.status}, "
        f"{results.days_running:.1f} days): {results.decision.text}",
        "users: " + ", ".join(f"{v} {n:,}" for v, n in results.users.items()),
    ]
    for note in results.decision.notes:
        lines.append(f"note: {note}")

    def fmt(x: float | None, pct: bool = False) -> str:
        if x is None:
            return "n/a"
        return f"{x * 100:+.2f}%" if pct else f"{x:.4g}"

    for m in [results.primary, *results.guardrails]:
        head = "primary" if m is results.primary else "guardrail"
        lines.append(f"{head} {m.metric}:")
        for v in m.values:
            lines.append(
                f"  {v.variant:<12} {fmt(v.value)} [{fmt(v.ci_low)}, {fmt(v.ci_high)}]"
                f"  ({v.users:,} users)"
            )
        for c in m.comparisons:
            lines.append(
                f"  {c.variant} vs {results.control}: {fmt(c.lift, True)} "
                f"sequential [{fmt(c.sequential_ci_low, True)}, {fmt(c.sequential_ci_high, True)}]"
                f" fixed [{fmt(c.ci_low, True)}, {fmt(c.ci_high, True)}] p={fmt(c.p_value)}"
                f" chance to beat {fmt(c.chance_to_beat)}{' CUPED' if c.cuped else ''}"
                f" -> {c.verdict}"
            )
    srm = results.srm
    lines.append(f"SRM: p = {fmt(srm.p_value)}{' FLAGGED' if srm.flagged else ''}")
    return lines


@experiments_app.command("results")
def experiments_results(
    name: _NameArg, as_json: _JsonOpt = False, data_dir: DataDirOpt = None
) -> None:
    """The experiment's results and the decision in plain words."""
    from tastebud.experiments.analysis import results_of

    services = _services(_settings(data_dir))
    try:
        results = results_of(services.store, services.experiments.get(name))
    finally:
        services.close()
    if as_json:
        out.print(results.model_dump_json(), markup=False)
        return
    for line in _render(results):
        out.print(line, markup=False)


@experiments_app.command("sample-size")
def experiments_sample_size(
    baseline: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Baseline rate, e.g. 0.05 for a 5% CTR")
    ],
    mde: Annotated[
        float, typer.Option(min=0.0, help="Minimum detectable relative effect, e.g. 0.05")
    ],
    alpha: Annotated[float, typer.Option(min=0.0, max=0.5)] = 0.05,
    power: Annotated[float, typer.Option(min=0.5, max=0.999)] = 0.8,
) -> None:
    """Users per variant needed to detect a relative lift ``mde`` on a rate ``baseline``."""
    from tastebud.errors import InvalidInput
    from tastebud.experiments.sequential import sample_size, sequential_sample_size

    try:
        n = sample_size(baseline, mde, alpha=alpha, power=power)
        n_seq = sequential_sample_size(baseline, mde, alpha=alpha, power=power)
    except ValueError as exc:
        raise InvalidInput(str(exc)) from None
    out.print(
        f"{int(n):,} users per variant to detect a {mde:.1%} relative lift on a "
        f"{baseline:.2%} rate (alpha {alpha:g}, power {power:.0%}, two-sided) with the "
        f"fixed-horizon test; {int(n_seq):,} with the sequential test watched until then "
        "(the default decision)"
    )
