"""``tastebud evaluate`` and ``tastebud train``: offline evaluation and model training."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from tastebud.cli import DataDirOpt, _services, _settings, app, out
from tastebud.errors import InvalidInput

__all__ = ["evaluate_cmd", "train_cmd"]


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
            "peers popularity, itemknn, als, bpr, ease)."
        ),  # fmt: skip
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
    out.print(f"{s['interactions']:,} interactions, {s['users']:,} users, {s['items']:,} items"
              f"{'' if s['has_time'] else ' (no timestamps)'}; protocol {protocol}")  # fmt: skip
    try:
        result = evaluate(dataset, names, protocol=protocol, seed=seed, tuning=tuning,
                          log=lambda m: out.print(f"  {m}"))  # fmt: skip
    except ValueError as exc:
        raise InvalidInput(str(exc)) from None
    header = f"{'model':<16}{'ndcg@10':>9}{'mrr@10':>9}{'prec@10':>9}{'rec@20':>9}{'cov@10':>9}"
    out.print(header)
    for name, m in result["models"].items():
        out.print(f"{name:<16}{m['ndcg@10']:>9.4f}{m['mrr@10']:>9.4f}{m['precision@10']:>9.4f}"
                  f"{m['recall@20']:>9.4f}{m['coverage@10']:>9.4f}")  # fmt: skip
    if "best_ndcg10_over_best_peer" in result:
        out.print(f"best Tastebud model {result['best_model']} / best peer {result['best_peer']}: "
                  f"{result['best_ndcg10_over_best_peer']}")  # fmt: skip
    if json_out is not None:
        json_out.write_text(json.dumps(result, indent=2))
        out.print(f"wrote {json_out}")
    if report is not None:
        report.write_text(render_html(result), encoding="utf-8")
        out.print(f"wrote {report}")


@app.command("train")
def train_cmd(
    model: Annotated[
        str, typer.Option(help="Model to train (any name `tastebud evaluate` knows).")
    ] = "tastebud_hybrid",
    tuning: Annotated[
        bool, typer.Option("--tune/--no-tune", help="Tune on a validation split first.")
    ] = True,
    seed: Annotated[int, typer.Option(help="Seed for the split and the fit.")] = 0,
    data_dir: DataDirOpt = None,
) -> None:
    """Fit a recommender on all the events in the database and save it, pickle-free, under
    ``<artifact-dir>/models/<model>/`` (tuned first on a temporal validation split)."""
    from tastebud.evaluation import load_dataset
    from tastebud.training import train_recommender

    _model_names(model)
    settings = _settings(data_dir)
    services = _services(settings)
    try:
        dataset = load_dataset(services.store)
    finally:
        services.close()
    target = settings.resolved_artifact_dir() / "models" / model
    result = train_recommender(dataset, target, model=model,
                               tuning=tuning, seed=seed)  # fmt: skip
    val = "n/a" if result.validation_ndcg10 is None else f"{result.validation_ndcg10:.4f}"
    out.print(f"trained {result.model} on {result.interactions:,} interactions "
              f"({result.users:,} users, {result.items:,} items) in {result.seconds:.1f} s; "
              f"validation ndcg@10 {val}; {len(result.trials)} tuning trials")  # fmt: skip
    out.print(f"params: {json.dumps(result.params)}")
    out.print(f"saved to {result.path}")
