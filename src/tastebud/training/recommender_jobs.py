"""Recommender training jobs: ``train_recommendations`` (a full fit with evaluation and
registration as ``candidate``) and ``train_incremental`` (only users with new events: fold-in,
popularity, features), and the fitting functions they share with the benchmarks."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import polars as pl
from pydantic import JsonValue

from tastebud.errors import InvalidInput, ModelNotFound
from tastebud.evaluation import Evaluation, evaluate
from tastebud.features import build_snapshot, load_items
from tastebud.ids import Vocabulary
from tastebud.models import FitOptions, model_class
from tastebud.pipeline.interactions import index_keys, pair_vocabularies, training_data
from tastebud.pipeline.load import count_events
from tastebud.registry import ModelLineage, ModelMetrics, ModelVersion
from tastebud.registry.recommender import REMOVED, LoadedModel, load_model, save_model
from tastebud.registry.records import SliceMetrics
from tastebud.training.cards import (
    code_version,
    feature_lineage,
    model_card,
    recommender_reference,
)
from tastebud.training.coldstart import cold_start_lists
from tastebud.training.context import (
    RECOMMENDATIONS,
    JobContext,
    consented,
    data_lineage,
    training_dataset,
    unchanged,
)
from tastebud.training.fingerprint import fingerprint

__all__ = [
    "IncrementalResult",
    "fit_recommender",
    "train_incremental",
    "train_recommendations",
    "update_recommender",
]


@dataclass
class IncrementalResult:
    """What an incremental run did (``version`` is ``None`` when nothing changed)."""

    version: ModelVersion | None
    base_version: int
    changed_users: int
    new_users: int
    dropped_unknown_items: int
    seconds: float


# -- recommenders -------------------------------------------------------------------------------
def fit_recommender(
    pairs: pl.DataFrame,
    model: str,
    params: Mapping[str, JsonValue] | None = None,
    *,
    seed: int = 0,
) -> LoadedModel:
    """Fit ``model`` (with ``params``: config overrides, as JSON) on every pair; returns it
    with its vocabularies and the users' training items."""
    cls = model_class(model)
    users, items = pair_vocabularies(pairs)
    data = training_data(pairs, users, items)
    fitted = cls(cls.config_class(**(params or {}))).fit(data, FitOptions(seed=seed))
    return LoadedModel(fitted, users, items, {}, data.matrix())


def update_recommender(
    base: LoadedModel, pairs: pl.DataFrame, since_ms: int, *, forget: set[str] | None = None
) -> tuple[LoadedModel, dict[str, int]]:
    """Fold the users with pairs newer than ``since_ms`` into ``base`` (new users appended;
    pairs of items the model does not know wait for the next full retrain). Users in
    ``forget`` (in the model, but no longer allowed in training: consent withdrawn) are folded
    in with no history, so nothing they did shapes their answers any more; ``pairs`` must not
    contain them.

    Raises:
        InvalidInput: the model has no incremental update.
    """
    if not base.model.supports_update:
        raise InvalidInput(f"{base.model.name} has no incremental update; run a full retrain")
    changed = pairs.filter(pl.col("ts_ms") > since_ms).get_column("user_key").unique()
    new_users = changed.filter(~changed.is_in(pl.Series(base.users.ids).implode()))
    users = Vocabulary([*base.users.ids, *new_users.sort().to_list()])
    data = training_data(pairs, users, base.items)
    gone = sorted(k for k in (forget or set()) if k in base.users)
    stats = {
        "changed_users": changed.len(),
        "new_users": new_users.len(),
        "forgotten_users": len(gone),
        "dropped_unknown_items": pairs.height - len(data),
    }
    if changed.len() or gone:
        touched = pl.concat([changed, pl.Series(gone, dtype=pl.String)])
        base.model.update(data, index_keys(touched, users))
    if gone:
        # Their slots stay (indices are positional) under a placeholder no key can match, so
        # they take the cold-start path; their factors and histories were just emptied.
        drop = set(gone)
        users = Vocabulary([f"{REMOVED}{i}" if k in drop else k for i, k in enumerate(users.ids)])
    return LoadedModel(base.model, users, base.items, dict(base.metrics), data.matrix()), stats


def _recommender_slices(result: Evaluation, model: str) -> dict[str, SliceMetrics]:
    """The slices of ``model`` as the registry's ``metrics.json`` stores them."""
    out: dict[str, SliceMetrics] = {}
    for attr, per_model in result.slices.items():
        entry = per_model.get(model)
        if entry is None:
            continue
        out[attr] = {
            "disparity": entry.disparity_ndcg10,
            "judged": entry.judged_ndcg10.to_json(),
            "groups": {
                g: {"users": v.users, "ndcg@10": v.metrics["ndcg@10"]}
                for g, v in entry.groups.items()
            },
        }
    return out


def _register_recommender(
    ctx: JobContext,
    loaded: LoadedModel,
    pairs: pl.DataFrame,
    metrics: ModelMetrics,
    lineage: ModelLineage,
    name: str,
) -> ModelVersion:
    model = loaded.model
    sample = np.arange(min(2000, len(loaded.users)))
    top = model.recommend(sample, 10, exclude=loaded.seen).item_idx
    monitoring = recommender_reference(pairs, top, len(loaded.items))
    params = model.config.model_dump(mode="json")
    lineage = {**lineage, "params": params, "code_version": code_version()}
    card = model_card(name, "recommender", model.name, params, metrics, lineage)
    catalogue = load_items(ctx.store)
    categories = dict(
        zip(
            catalogue.get_column("item_id").to_list(),
            catalogue.get_column("category").to_list(),
            strict=True,
        )
    )
    cold = cold_start_lists(ctx.store, set(loaded.items.ids), categories)
    staging = ctx.registry.staging_dir(name)
    try:
        save_model(
            staging,
            model,
            loaded.users,
            loaded.items,
            metrics,
            seen=loaded.seen,
            extra={
                "model_card.md": card,
                "monitoring.json": json.dumps(monitoring, indent=2),
                "lineage.json": json.dumps(lineage, indent=2, sort_keys=True),
                "cold_start.json": json.dumps(cold),
            },
        )
        return ctx.registry.register(
            name,
            staging,
            kind="recommender",
            algorithm=model.name,
            metrics=metrics,
            lineage=lineage,
            actor=ctx.actor,
        )
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # gone if registered (moved), or failed


def train_recommendations(
    ctx: JobContext,
    *,
    model: str = "tastebud_hybrid",
    seed: int = 0,
    tuning: bool = True,
    name: str = RECOMMENDATIONS,
) -> ModelVersion:
    """Evaluate ``model`` on the temporal hold-out (tuned on validation inside train, next to
    popularity on the same split, with fairness slices), refit it on all the data with the
    tuned parameters and register it as a candidate. When the latest version of ``name`` was
    trained on the same data with the same configuration, nothing is trained and that version
    is returned.

    Raises:
        InvalidInput: unknown model, or not enough data.
    """
    try:
        model_class(model)
    except KeyError as exc:
        raise InvalidInput(str(exc.args[0])) from None
    dataset, excluded = training_dataset(ctx)
    if dataset.pairs.height == 0:
        raise InvalidInput("no interactions to train on: import or ingest events first")
    users = dataset.users if dataset.users is not None else pl.DataFrame()
    fp = fingerprint(
        {
            "job": "full",
            "kind": "recommender",
            "model": model,
            "seed": seed,
            "tuning": tuning,
            "code": code_version(),
            "events": count_events(ctx.store),
        },
        {"pairs": dataset.pairs, "users": users, "items": load_items(ctx.store)},
    )
    same = unchanged(ctx, name, fp)
    if same is not None:
        return same
    ctx.log(f"{name}: evaluating {model}{' (tuned on validation)' if tuning else ''}")
    names = [model] if model == "popularity" else [model, "popularity"]
    try:
        result = evaluate(
            dataset,
            names,
            seed=seed,
            tuning=tuning,
            log=lambda m: ctx.log(f"  {m}"),
            progress=ctx.progress,
        )
    except ValueError as exc:
        raise InvalidInput(str(exc)) from None
    entry = result.models[model]
    test = dict(entry.metrics)
    baseline = result.models["popularity"].metrics["ndcg@10"]
    metrics: ModelMetrics = {  # the registry's metrics.json
        "protocol": result.protocol,
        "test_users": result.test_users,
        "test": test,
        "ci95": {m: list(ci) for m, ci in entry.ci95.items()},
        "validation": result.tuning[model].to_json(),
        "baseline": {"popularity": {"ndcg@10": baseline}},
        "slices": _recommender_slices(result, model),
    }
    loaded = fit_recommender(dataset.pairs, model, entry.params, seed=seed)
    lineage: ModelLineage = {
        "job": "full",
        "seed": seed,
        "data": data_lineage(ctx, dataset.pairs),
        "consent": {"purpose": "personalization", "excluded_users": excluded},
        "features": feature_lineage(ctx.store),
        "fingerprint": fp,
    }
    mv = _register_recommender(ctx, loaded, dataset.pairs, metrics, lineage, name)
    ctx.log(
        f"registered {name} v{mv.version} ({model}): held-out ndcg@10 "
        f"{test['ndcg@10']:.4f} (popularity {baseline:.4f})"
    )
    return mv


def train_incremental(ctx: JobContext, *, name: str = RECOMMENDATIONS) -> IncrementalResult:
    """Update the production version of ``name`` (else its newest) with the users who have new
    events since its data window; popularity and features are refreshed too. Registers the
    result as a candidate whose lineage names its parent; the held-out metrics are the
    parent's (marked ``inherited_from``) until the next full run re-evaluates.

    Raises:
        ModelNotFound: nothing to update (run a full training first).
    """
    t0 = time.perf_counter()
    base_mv = ctx.registry.resolve(name, "production") or ctx.registry.latest(name)
    if base_mv is None:
        raise ModelNotFound(f"no version of {name} to update: run `tastebud train --full` first")
    build_snapshot(ctx.store)
    base = load_model(ctx.registry.artifact_path(base_mv))
    dataset, excluded = training_dataset(ctx)
    since = int(base_mv.lineage.get("data", {}).get("window_end_ms") or 0)
    forget = set(base.users.ids) - consented(ctx.store, base.users.ids, ctx.consent_mode)
    updated, stats = update_recommender(base, dataset.pairs, since, forget=forget)
    if stats["changed_users"] == 0 and stats["forgotten_users"] == 0:
        ctx.log(f"{name}: no new interactions since v{base_mv.version}; nothing to update")
        return IncrementalResult(None, base_mv.version, 0, 0, 0, time.perf_counter() - t0)
    metrics: ModelMetrics = {**base_mv.metrics, "inherited_from": base_mv.version}
    lineage: ModelLineage = {
        "job": "incremental",
        "seed": base_mv.lineage.get("seed"),
        "parent": {"version": base_mv.version, "artifact_id": base_mv.artifact_id},
        "data": {
            **data_lineage(ctx, dataset.pairs),
            "window_start_ms": base_mv.lineage.get("data", {}).get("window_start_ms"),
        },
        "consent": {"purpose": "personalization", "excluded_users": excluded},
        "features": feature_lineage(ctx.store),
        "update": stats,
    }
    mv = _register_recommender(ctx, updated, dataset.pairs, metrics, lineage, name)
    ctx.log(
        f"registered {name} v{mv.version}: v{base_mv.version} + {stats['changed_users']:,} "
        f"changed users ({stats['new_users']:,} new)"
    )
    return IncrementalResult(
        mv,
        base_mv.version,
        stats["changed_users"],
        stats["new_users"],
        stats["dropped_unknown_items"],
        time.perf_counter() - t0,
    )
