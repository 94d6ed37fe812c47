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

import time
from dataclasses import dataclass, field

from tastebud.errors import InvalidInput
from tastebud.features import build_snapshot
from tastebud.registry import ModelVersion
from tastebud.training.context import RECOMMENDATIONS, JobContext
from tastebud.training.predictor_jobs import train_predictor
from tastebud.training.recommender_jobs import train_recommendations

__all__ = ["FullResult", "train_full"]


@dataclass
class FullResult:
    """What a full training run registered, and what it skipped and why."""

    registered: list[ModelVersion]
    skipped: dict[str, str]
    seconds: float
    unchanged: list[ModelVersion] = field(default_factory=list)
    """Latest versions whose data and configuration were those of this run: nothing trained."""


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
