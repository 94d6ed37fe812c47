"""What every training job works with: the job context (store, registry, governance policy,
consent mode, actor, progress), the consented training data, its lineage, and the check that
skips a run whose inputs and configuration are those of the latest version."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import polars as pl

from tastebud.config import GovernancePolicy
from tastebud.evaluation import Dataset, load_dataset
from tastebud.evaluation.runner import EvalProgress
from tastebud.features import load_items
from tastebud.pipeline.load import count_events
from tastebud.privacy import ConsentLog, ConsentPolicy
from tastebud.registry import ModelVersion, Registry
from tastebud.registry.records import DataLineage
from tastebud.store import Store

__all__ = [
    "JobContext",
    "RECOMMENDATIONS",
    "consented",
    "data_lineage",
    "training_dataset",
    "unchanged",
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


# -- data ---------------------------------------------------------------------------------------
def consented(store: Store, keys: list[str], mode: Literal["opt-out", "opt-in"]) -> set[str]:
    """The users among ``keys`` whose data may be used for personalization (training)."""
    policy = ConsentPolicy(mode)
    states = ConsentLog(store).states(keys, "personalization")
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


def data_lineage(ctx: JobContext, pairs: pl.DataFrame) -> DataLineage:
    """What a model was trained on: the time window, counts and catalogue coverage."""
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


def unchanged(ctx: JobContext, name: str, fp: str) -> ModelVersion | None:
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
