"""Training jobs: ``full`` (features, recommenders, predictors, evaluation, registration as
``candidate``) and ``incremental`` (only users with new events: fold-in, popularity, features).

Both exclude users without personalization consent, write their artifact into a staging
directory (removed if anything fails) and register it with its metrics, lineage, monitoring
reference and model card; promotion is a separate, governed step (``registry.promote``).

A full run whose inputs (events, interactions, user attributes, catalogue; labels and features
for predictors) and configuration (model, seed, tuning, splits, code version) are those of the
latest version of its model trains nothing and registers nothing: its lineage's
``fingerprint`` (:mod:`tastebud.training.fingerprint`) is compared before any fit.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import polars as pl
from numpy.typing import NDArray

from tastebud.config import GovernancePolicy
from tastebud.errors import InvalidInput, ModelNotFound
from tastebud.evaluation import Dataset, evaluate, load_dataset
from tastebud.evaluation.runner import EvalProgress
from tastebud.features import build_snapshot, load_items
from tastebud.ids import Vocabulary
from tastebud.models import FitOptions, model_class
from tastebud.pipeline.interactions import index_keys, pair_vocabularies, training_data
from tastebud.pipeline.load import count_events
from tastebud.privacy import ConsentPolicy
from tastebud.registry import ModelVersion, Registry
from tastebud.registry.recommender import REMOVED, LoadedModel, load_model, save_model
from tastebud.store import Store
from tastebud.training.cards import (
    code_version,
    feature_lineage,
    model_card,
    predictor_reference,
    recommender_reference,
)
from tastebud.training.coldstart import cold_start_lists
from tastebud.training.fingerprint import fingerprint

__all__ = [
    "FullResult",
    "IncrementalResult",
    "JobContext",
    "fit_recommender",
    "train_full",
    "train_incremental",
    "train_predictor",
    "train_recommendations",
    "update_recommender",
]

RECOMMENDATIONS = "recommendations"


@dataclass
class JobContext:
    """What a training job works with (built from the deployment's services)."""

    store: Store
    registry: Registry
    policy: GovernancePolicy
    consent_mode: Literal["opt-out", "opt-in"] = "opt-out"
    actor: str = "worker"
    log: Callable[[str], None] = field(default=lambda _m: None)
    progress: Callable[[EvalProgress], None] | None = None
    """Told where the recommender's evaluation is (tuning trials, test refit), for displays."""


@dataclass
class FullResult:
    """What a full training run registered, and what it skipped and why."""

    registered: list[ModelVersion]
    skipped: dict[str, str]
    seconds: float
    unchanged: list[ModelVersion] = field(default_factory=list)
    """Latest versions whose data and configuration were those of this run: nothing trained."""


@dataclass
class IncrementalResult:
    """What an incremental run did (``version`` is ``None`` when nothing changed)."""

    version: ModelVersion | None
    base_version: int
    changed_users: int
    new_users: int
    dropped_unknown_items: int
    seconds: float


# -- data ---------------------------------------------------------------------------------------
def consented(store: Store, keys: list[str], mode: Literal["opt-out", "opt-in"]) -> set[str]:
    """The users among ``keys`` whose data may be used for personalization (training)."""
    policy = ConsentPolicy(mode)
    states = store.consent_states(keys, "personalization")
    return {k for k in keys if policy.allows(states.get(k))}


def training_dataset(ctx: JobContext) -> tuple[Dataset, int]:
    """The cleaned interactions of users who allow personalization; (dataset, excluded)."""
    dataset = load_dataset(ctx.store)
    keys = dataset.pairs.get_column("user_key").unique().to_list()
    allowed = consented(ctx.store, keys, ctx.consent_mode)
    excluded = len(keys) - len(allowed)
    if excluded:
        keep = pl.Series("user_key", sorted(allowed), dtype=pl.String)
        pairs = dataset.pairs.filter(pl.col("user_key").is_in(keep.implode()))
        users = (
            None
            if dataset.users is None
            else dataset.users.filter(pl.col("user_key").is_in(keep.implode()))
        )
        dataset = Dataset(pairs, users)
    return dataset, excluded


def _data_lineage(ctx: JobContext, pairs: pl.DataFrame) -> dict[str, Any]:
    ts = pairs.get_column("ts_ms")
    catalogue = load_items(ctx.store).get_column("item_id")
    items = pairs.get_column("item_id").unique()
    coverage = (
        float(items.is_in(catalogue.implode()).sum() / catalogue.len()) if catalogue.len() else None
    )
    return {
        "window_start_ms": None if pairs.is_empty() else int(ts.min()),  # type: ignore[arg-type]
        "window_end_ms": None if pairs.is_empty() else int(ts.max()),  # type: ignore[arg-type]
        "events": count_events(ctx.store),
        "interactions": pairs.height,
        "users": pairs.get_column("user_key").n_unique(),
        "items": items.len(),
        "item_coverage": None if coverage is None else round(coverage, 4),
    }


def _unchanged(ctx: JobContext, name: str, fp: str) -> ModelVersion | None:
    """The latest version of ``name`` if it was trained with fingerprint ``fp`` (then nothing
    needs training: the same data and configuration give the same model)."""
    latest = ctx.registry.latest(name)
    if latest is None or latest.lineage.get("fingerprint") != fp:
        return None
    ctx.log(
        f"{name}: same data and configuration as v{latest.version} (fingerprint "
        f"{fp[:12]}); nothing trained, no version registered"
    )
    return latest


# -- recommenders -------------------------------------------------------------------------------
def fit_recommender(
    pairs: pl.DataFrame, model: str, params: dict[str, Any] | None = None, *, seed: int = 0
) -> LoadedModel:
    """Fit ``model`` (with ``params``) on every pair; returns it with its vocabularies and
    the users' training items."""
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


def _recommender_slices(result: dict[str, Any], model: str) -> dict[str, Any]:
    out = {}
    for attr, per_model in result.get("slices", {}).items():
        entry = per_model.get(model)
        if entry is None:
            continue
        out[attr] = {
            "disparity": entry.get("disparity_ndcg@10"),
            "judged": entry.get("judged_ndcg@10"),
            "groups": {
                g: {"users": v["users"], "ndcg@10": v["ndcg@10"]}
                for g, v in entry["groups"].items()
            },
        }
    return out


def _register_recommender(
    ctx: JobContext,
    loaded: LoadedModel,
    pairs: pl.DataFrame,
    metrics: dict[str, Any],
    lineage: dict[str, Any],
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
    same = _unchanged(ctx, name, fp)
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
    entry = result["models"][model]
    test = {k: v for k, v in entry.items() if k not in ("ci95", "params", "peer", "fit_seconds")}
    metrics = {
        "protocol": result["protocol"],
        "test_users": result["test_users"],
        "test": test,
        "ci95": entry["ci95"],
        "validation": result["tuning"][model],
        "baseline": {"popularity": {"ndcg@10": result["models"]["popularity"]["ndcg@10"]}},
        "slices": _recommender_slices(result, model),
    }
    loaded = fit_recommender(dataset.pairs, model, entry["params"], seed=seed)
    lineage = {
        "job": "full",
        "seed": seed,
        "data": _data_lineage(ctx, dataset.pairs),
        "consent": {"purpose": "personalization", "excluded_users": excluded},
        "features": feature_lineage(ctx.store),
        "fingerprint": fp,
    }
    mv = _register_recommender(ctx, loaded, dataset.pairs, metrics, lineage, name)
    ctx.log(
        f"registered {name} v{mv.version} ({model}): held-out ndcg@10 "
        f"{test['ndcg@10']:.4f} (popularity {metrics['baseline']['popularity']['ndcg@10']:.4f})"
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
    metrics = {**base_mv.metrics, "inherited_from": base_mv.version}
    lineage = {
        "job": "incremental",
        "seed": base_mv.lineage.get("seed"),
        "parent": {"version": base_mv.version, "artifact_id": base_mv.artifact_id},
        "data": {
            **_data_lineage(ctx, dataset.pairs),
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


# -- predictors ---------------------------------------------------------------------------------
def _predictor_slices(
    store: Store, keys: list[str], y: NDArray[np.int64], score: NDArray[np.float64]
) -> dict[str, Any]:
    """Per user-attribute group: rows, positive rate and out-of-fold ROC-AUC; disparity is the
    best group's AUC over the worst's (groups of at least 50 rows with both classes)."""
    from sklearn.metrics import roc_auc_score

    from tastebud.evaluation.data import user_attributes

    attrs = user_attributes(store)
    frame = pl.DataFrame({"user_key": keys}).join(
        attrs, on="user_key", how="left", maintain_order="left"
    )
    out: dict[str, Any] = {}
    for attr in [c for c in frame.columns if c != "user_key"]:
        values = frame.get_column(attr).fill_null("(unknown)").to_numpy()
        groups: dict[str, Any] = {}
        for g in sorted(set(values)):
            m = values == g
            if m.sum() >= 50 and 5 <= y[m].sum() <= m.sum() - 5:
                groups[str(g)] = {
                    "rows": int(m.sum()),
                    "positive_rate": round(float(y[m].mean()), 4),
                    "roc_auc": round(float(roc_auc_score(y[m], score[m])), 4),
                }
        if len(groups) >= 2:
            aucs = [v["roc_auc"] for v in groups.values()]
            out[attr] = {"disparity": round(max(aucs) / min(aucs), 4), "groups": groups}
    return out


def train_predictor(
    ctx: JobContext, target: str, *, seed: int = 0, splits: int = 5
) -> ModelVersion:
    """Evaluate the churn or conversion predictor under the DESIGN.md protocol (peers in the
    same run), fit it on all the rows and register it as a candidate. When the latest version
    of ``target`` was trained on the same rows with the same configuration, nothing is trained
    and that version is returned.

    Raises:
        InvalidInput: too few positive or negative labels to learn from.
    """
    from tastebud.evaluation.data import user_attributes
    from tastebud.models.predictor import Predictor, PredictorConfig
    from tastebud.registry.predictor import save_predictor
    from tastebud.training.labels import event_training_set
    from tastebud.training.predictors import evaluate_predictors
    from tastebud.training.tabular import table_from_frame

    ctx.log(f"{target}: labels and point-in-time features")
    frame = event_training_set(ctx.store, target)  # type: ignore[arg-type]
    keys = frame.get_column("user_key").unique().to_list()
    allowed = consented(ctx.store, keys, ctx.consent_mode)
    excluded = len(keys) - len(allowed)
    frame = frame.filter(pl.col("user_key").is_in(pl.Series(sorted(allowed)).implode()))
    window = (frame.get_column("as_of_ms").min(), frame.get_column("as_of_ms").max())
    table = table_from_frame(frame.drop("as_of_ms", "snapshot_id"), "label", "user_key")
    positives = int(table.y.sum())
    if positives < 20 or len(table.y) - positives < 20:
        raise InvalidInput(
            f"{target}: {positives} positive and {len(table.y) - positives} "
            "negative labels; at least 20 of each are needed"
        )
    fp = fingerprint(
        {
            "job": "full",
            "kind": "predictor",
            "target": target,
            "seed": seed,
            "splits": splits,
            "code": code_version(),
            "events": count_events(ctx.store),
        },
        {"rows": frame.drop("snapshot_id"), "users": user_attributes(ctx.store)},
    )
    same = _unchanged(ctx, target, fp)
    if same is not None:
        return same
    ctx.log(
        f"{target}: evaluating on {splits} splits against the peers, then fitting on "
        f"{len(table.y):,} rows"
    )
    means, details = evaluate_predictors(table, splits=splits)
    groups = None if table.ids is None else np.asarray(table.ids)
    predictor = Predictor(PredictorConfig(seed=seed)).fit(
        table.x, table.y, table.names, table.categorical, groups=groups
    )
    oof = predictor.oof_logit_
    ids = list(table.ids) if table.ids is not None else []
    metrics = {
        "protocol": f"{splits} stratified (group) 80/20 splits, means",
        "test": means["tastebud"],
        "peers": {k: v for k, v in means.items() if k != "tastebud"},
        "ece_floor": details["tastebud_ece_floor"],
        "chosen": predictor.chosen,
        "calibration_levels": predictor.calibration_levels_,
        "importance": predictor.importance(),
        "slices": _predictor_slices(ctx.store, ids, table.y, oof) if ids else {},
    }
    params = predictor.config.model_dump(mode="json")
    lineage: dict[str, Any] = {
        "job": "full",
        "seed": seed,
        "target": target,
        "data": {
            "window_start_ms": window[0],
            "window_end_ms": window[1],
            "rows": len(table.y),
            "positives": positives,
            "users": len(allowed),
            "events": count_events(ctx.store),
        },
        "consent": {"purpose": "personalization", "excluded_users": excluded},
        "features": feature_lineage(ctx.store),
        "code_version": code_version(),
        "params": params,
        "fingerprint": fp,
    }
    probs = predictor.predict_proba(table.x)
    monitoring = predictor_reference(probs, table.x, table.names, table.y)
    card = model_card(target, "predictor", predictor.chosen, params, metrics, lineage)
    staging = ctx.registry.staging_dir(target)
    try:
        save_predictor(
            staging,
            predictor,
            table.schema(),
            metrics,
            extra={
                "model_card.md": card,
                "monitoring.json": json.dumps(monitoring, indent=2),
                "lineage.json": json.dumps(lineage, indent=2, sort_keys=True, default=str),
            },
        )
        mv = ctx.registry.register(
            target,
            staging,
            kind="predictor",
            algorithm=predictor.chosen,
            metrics=metrics,
            lineage=lineage,
            actor=ctx.actor,
        )
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    ctx.log(
        f"registered {target} v{mv.version} ({predictor.chosen}): held-out roc_auc "
        f"{means['tastebud']['roc_auc']:.4f}, ece {means['tastebud']['ece']:.4f}"
    )
    return mv


def train_full(
    ctx: JobContext,
    *,
    model: str = "tastebud_hybrid",
    targets: tuple[str, ...] = ("churn", "conversion"),
    seed: int = 0,
    tuning: bool = True,
    splits: int = 5,
) -> FullResult:
    """Features, then the recommender and each predictor, each registered as a candidate. A
    predictor without enough labels is skipped with the reason (the recommender is not); a
    model whose latest version had the same inputs and configuration is ``unchanged``."""
    t0 = time.perf_counter()
    ctx.log("features: building a snapshot")
    snap = build_snapshot(ctx.store)
    ctx.log(f"features: snapshot {snap.snapshot_id}")
    result = FullResult([], {}, 0.0)

    def keep(mv: ModelVersion, before: ModelVersion | None) -> None:
        new = before is None or before.version != mv.version
        (result.registered if new else result.unchanged).append(mv)

    before = ctx.registry.latest(RECOMMENDATIONS)
    keep(train_recommendations(ctx, model=model, seed=seed, tuning=tuning), before)
    for target in targets:
        try:
            before = ctx.registry.latest(target)
            keep(train_predictor(ctx, target, seed=seed, splits=splits), before)
        except InvalidInput as exc:
            result.skipped[target] = str(exc)
            ctx.log(f"skipped {target}: {exc}")
    result.seconds = time.perf_counter() - t0
    return result
