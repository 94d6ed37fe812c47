"""``tastebud evaluate`` and ``tastebud train``: offline evaluation and model training."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from tastebud.cli import DataDirOpt, _progress, _services, _settings, app, out, prog
from tastebud.errors import InvalidInput

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

    from tastebud.evaluation.runner import EvalProgress

__all__ = [
    "cli_actor",
    "eval_progress",
    "evaluate_cmd",
    "train_cmd",
]


def eval_progress(progress: Progress) -> Callable[[EvalProgress], None]:
    """A callback for ``evaluate(progress=...)`` that shows each model's tuning trials and
    its test refit as bars of ``progress``."""
    tasks: dict[tuple[str, str], TaskID] = {}

    def show(p: EvalProgress) -> None:
        key = (p.model, p.split)
        if key not in tasks:
            what = "tuning on validation" if p.split == "validation" else "refit, scoring test"
            tasks[key] = progress.add_task(
                f"({p.position}/{p.models}) {p.model}: {what}", total=p.trials
            )
            tuning = tasks.get((p.model, "validation"))
            if p.split == "test" and tuning is not None:  # the search stopped early: done
                done = progress.tasks[tuning].completed
                progress.update(tuning, total=done, completed=done)
        progress.update(tasks[key], completed=p.trial, total=p.trials)

    return show


def _model_names(models: str | None) -> list[str] | None:
    from tastebud.models import MODELS

    if not models:
        return None
    names = [m.strip() for m in models.split(",") if m.strip()]
    unknown = [n for n in names if n not in MODELS]
    if unknown:
        raise InvalidInput(f"unknown model(s) {', '.join(unknown)}; known: {', '.join(MODELS)}")
    return names


@app.command("evaluate")
def evaluate_cmd(
    models: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated model names (default: Tastebud's models and the "
            "peers popularity, itemknn, rp3beta, als, bpr, ease)."
        ),
    ] = None,
    protocol: Annotated[
        str, typer.Option(help="temporal-user (DESIGN.md) or global-time.")
    ] = "temporal-user",
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Write the results as JSON to this file.")
    ] = None,
    report: Annotated[
        Path | None, typer.Option(help="Write an HTML report with tables and plots to this file.")
    ] = None,
    tuning: Annotated[
        bool, typer.Option("--tune/--no-tune", help="Tune hyper-parameters on validation.")
    ] = True,
    seed: Annotated[int, typer.Option(help="Seed of the split's tie-breaks and of the fits.")] = 0,
    data_dir: DataDirOpt = None,
) -> None:
    """Evaluate recommenders on the events in the configured database: tune each on a
    validation split of train, refit on train, report test metrics with 95% bootstrap intervals
    and per-group (fairness) slices."""
    from tastebud.evaluation import PROTOCOLS, evaluate, load_dataset, render_html

    if protocol not in PROTOCOLS:
        raise InvalidInput(f"unknown protocol {protocol!r}; known: {', '.join(PROTOCOLS)}")
    names = _model_names(models)
    services = _services(_settings(data_dir))
    try:
        dataset = load_dataset(services.store)
    finally:
        services.close()
    if dataset.pairs.height == 0:
        raise InvalidInput("no interactions in the database: import or ingest events first")
    s = dataset.summary()
    out.print(
        f"{s.interactions:,} interactions, {s.users:,} users, {s.items:,} items"
        f"{'' if s.has_time else ' (no timestamps)'}; protocol {protocol}"
    )
    try:
        with _progress() as progress:
            result = evaluate(
                dataset,
                names,
                protocol=protocol,
                seed=seed,
                tuning=tuning,
                log=lambda m: out.print(f"  {m}"),
                progress=eval_progress(progress),
            )
    except ValueError as exc:
        raise InvalidInput(str(exc)) from None
    header = f"{'model':<16}{'ndcg@10':>9}{'mrr@10':>9}{'prec@10':>9}{'rec@20':>9}{'cov@10':>9}"
    out.print(header)
    for name, scores in result.models.items():
        m = scores.metrics
        out.print(
            f"{name:<16}{m['ndcg@10']:>9.4f}{m['mrr@10']:>9.4f}{m['precision@10']:>9.4f}"
            f"{m['recall@20']:>9.4f}{m['coverage@10']:>9.4f}"
        )
    if result.best_model is not None and result.best_peer is not None:
        out.print(
            f"best model {result.best_model} (on validation) / best peer {result.best_peer} "
            "(on test): "
            f"{result.best_ndcg10_over_best_peer}"
        )
    from tastebud.files import write_private  # reports hold per-group results: 0600

    if json_out is not None:
        write_private(json_out, json.dumps(result.to_json(), indent=2))
        out.print(f"wrote {json_out}")
    if report is not None:
        write_private(report, render_html(result))
        out.print(f"wrote {report}")


def cli_actor() -> str:
    """Who a CLI action is recorded as: ``cli:<os user>`` (the CLI has database access, which
    on a deployment is an operator's)."""
    import getpass

    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli:unknown"


@app.command("train")
def train_cmd(
    full: Annotated[
        bool,
        typer.Option(
            "--full",
            help="Features, recommender, churn and conversion "
            "predictors, evaluation; each registered as a candidate.",
        ),
    ] = False,
    incremental: Annotated[
        bool,
        typer.Option(
            "--incremental",
            help="Fold the users with new events into the "
            "production recommender (popularity and features refreshed).",
        ),
    ] = False,
    model: Annotated[
        str, typer.Option(help="Recommender to train (any name `tastebud evaluate` knows).")
    ] = "tastebud_hybrid",
    tuning: Annotated[
        bool, typer.Option("--tune/--no-tune", help="Tune on a validation split first.")
    ] = True,
    seed: Annotated[int, typer.Option(help="Seed for the split and the fit.")] = 0,
    splits: Annotated[
        int, typer.Option(min=2, max=10, help="Predictor evaluation splits (--full).")
    ] = 5,
    data_dir: DataDirOpt = None,
) -> None:
    """Train and register models as ``candidate`` versions in the registry (evaluated on a
    temporal hold-out, with lineage, monitoring reference and model card). Without --full or
    --incremental only the recommender is trained. Promote with `tastebud models promote`."""
    from tastebud.training.jobs import train_full
    from tastebud.training.recommender_jobs import train_incremental, train_recommendations

    if full and incremental:
        raise InvalidInput("choose one of --full and --incremental")
    _model_names(model)
    services = _services(_settings(data_dir))
    from tastebud.worker import job_context

    ctx = job_context(services, cli_actor(), log=lambda m: out.print(m))
    try:
        if incremental:
            inc = train_incremental(ctx)
            if inc.version is None:
                out.print(f"nothing new since v{inc.base_version}; no version registered")
                return
            registered = [inc.version]
            out.print(
                f"incremental update of v{inc.base_version} in {inc.seconds:.1f} s: "
                f"{inc.changed_users:,} changed users ({inc.new_users:,} new)"
            )
        elif full:
            with _progress() as progress:
                ctx.progress = eval_progress(progress)
                result = train_full(ctx, model=model, seed=seed, tuning=tuning, splits=splits)
            registered = result.registered
            out.print(f"full training in {result.seconds:.1f} s")
        else:
            before = services.registry.latest("recommendations")
            with _progress() as progress:
                ctx.progress = eval_progress(progress)
                mv = train_recommendations(ctx, model=model, seed=seed, tuning=tuning)
            registered = [] if before is not None and before.version == mv.version else [mv]
        for mv in registered:
            out.print(
                f"registered {mv.name} v{mv.version} ({mv.algorithm}) as candidate; "
                f"artifact {mv.artifact_id}"
            )
        if not registered:
            out.print("no new version: the latest one was trained on these data and settings")
            return
        names = " ".join(f"{mv.name} {mv.version}" for mv in registered[:1])
        out.print(f"next: `{prog()} models show {names}`, then approve and promote it")
    finally:
        services.close()
