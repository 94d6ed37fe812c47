"""Predictor training jobs: labels and features of consenting users, the protocol against the
peers, and registration of the chosen churn or conversion model as ``candidate``."""

from __future__ import annotations

import json
import shutil

import numpy as np
import polars as pl
from numpy.typing import NDArray

from tastebud.errors import InvalidInput
from tastebud.pipeline.load import count_events
from tastebud.registry import ModelLineage, ModelMetrics, ModelVersion
from tastebud.registry.records import GroupMetrics, SliceMetrics
from tastebud.store import Store
from tastebud.training.cards import (
    code_version,
    feature_lineage,
    model_card,
    predictor_reference,
)
from tastebud.training.context import JobContext, consented, unchanged
from tastebud.training.fingerprint import fingerprint

__all__ = ["train_predictor"]


# -- predictors ---------------------------------------------------------------------------------
def _predictor_slices(
    store: Store, keys: list[str], y: NDArray[np.int64], score: NDArray[np.float64]
) -> dict[str, SliceMetrics]:
    """Per user-attribute group: rows, positive rate and out-of-fold ROC-AUC; disparity is the
    best group's AUC over the worst's (groups of at least 50 rows with both classes)."""
    from sklearn.metrics import roc_auc_score

    from tastebud.evaluation.data import user_attributes

    attrs = user_attributes(store)
    frame = pl.DataFrame({"user_key": keys}).join(
        attrs, on="user_key", how="left", maintain_order="left"
    )
    out: dict[str, SliceMetrics] = {}
    for attr in [c for c in frame.columns if c != "user_key"]:
        values = frame.get_column(attr).fill_null("(unknown)").to_numpy()
        groups: dict[str, GroupMetrics] = {}
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
    from tastebud.models.predictor import Predictor
    from tastebud.models.predictor_config import PredictorConfig
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
    as_of = frame.get_column("as_of_ms")  # an integer column: its bounds are ints (or None)
    window = tuple(v if isinstance(v, int) else None for v in (as_of.min(), as_of.max()))
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
    same = unchanged(ctx, target, fp)
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
    metrics: ModelMetrics = {
        "protocol": f"{splits} stratified (group) 80/20 splits, means",
        "test": dict(means["tastebud"]),
        "peers": {k: v for k, v in means.items() if k != "tastebud"},
        "ece_floor": details.tastebud_ece_floor,
        "chosen": predictor.chosen,
        "calibration_levels": predictor.calibration_levels_,
        "importance": predictor.importance(),
        "slices": _predictor_slices(ctx.store, ids, table.y, oof) if ids else {},
    }
    params = predictor.config.model_dump(mode="json")
    lineage: ModelLineage = {
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
