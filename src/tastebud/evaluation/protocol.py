"""Evaluation protocols: time splits, the dense-index view of a split, and fitting + scoring.

``temporal-user`` (DESIGN.md): per user, sort by (time, seeded random tie-break); users with at
least 5 interactions put their last 20% (rounded, at least 1) into test; the rest is train.
Validation is the same split applied to train. ``global-time``: the last 20% of all interactions
by time are test; only test users with training history are scored (a cold user has no history
to personalise from; cold start is served by popularity and measured separately).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import polars as pl
from numpy.typing import NDArray
from scipy.sparse import csr_matrix

from tastebud.evaluation.metrics import Truth, catalog_metrics, per_user_metrics
from tastebud.ids import Vocabulary
from tastebud.models import FitOptions, Recommender, TrainingData
from tastebud.pipeline.interactions import index_keys, pair_vocabularies, training_data
from tastebud.pipeline.split import temporal_user_split

__all__ = [
    "PROTOCOLS",
    "Protocol",
    "Scored",
    "Split",
    "make_split",
    "score_model",
    "split_frames",
]

Protocol = Literal["temporal-user", "global-time"]
PROTOCOLS: tuple[str, ...] = ("temporal-user", "global-time")
"""Known protocol names."""

TEST_FRACTION = 0.2
MIN_INTERACTIONS = 5


def split_frames(
    pairs: pl.DataFrame, protocol: str, *, seed: int = 0
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(train, test) rows of a pairs frame (``user_key``, ``item_id``, ``ts_ms``, ``weight``)."""
    if protocol == "temporal-user":
        return temporal_user_split(
            pairs, test_fraction=TEST_FRACTION, min_interactions=MIN_INTERACTIONS, seed=seed
        )
    if protocol == "global-time":
        rng = np.random.default_rng(seed)
        ranked = pairs.with_columns(pl.Series("_tie", rng.random(pairs.height))).sort(
            "ts_ms", "_tie"
        )
        cut = ranked.height - int(round(ranked.height * TEST_FRACTION))
        train, test = ranked.head(cut).drop("_tie"), ranked.slice(cut).drop("_tie")
        known = train.select("user_key").unique()
        return train, test.join(known, on="user_key", how="semi")
    raise ValueError(f"unknown protocol {protocol!r}; known: {', '.join(PROTOCOLS)}")


@dataclass
class Split:
    """A train/test split in dense indices (vocabularies from train)."""

    train: TrainingData
    users: Vocabulary
    items: Vocabulary
    test_users: NDArray[np.int64]
    """Indices (into ``users``) of the users with test items."""
    truth: Truth
    """Their test items, rows aligned with ``test_users``."""

    @property
    def test_user_keys(self) -> list[str]:
        """External ids of the test users, aligned with ``test_users``."""
        return [self.users.ids[i] for i in self.test_users]


def make_split(
    train: pl.DataFrame, test: pl.DataFrame, *, user_groups: dict[str, int] | None = None
) -> Split:
    """Dense-index view of (train, test) frames. Test users missing from train are dropped
    (no history to rank from); test items missing from train still count as relevant."""
    users, items = pair_vocabularies(train)
    groups = None
    if user_groups is not None:
        groups = np.array([user_groups.get(k, -1) for k in users.ids], dtype=np.int32)
    data = training_data(train, users, items, user_groups=groups)
    tu = index_keys(test.get_column("user_key"), users)
    ti = index_keys(test.get_column("item_id"), items)
    keep = tu >= 0
    test_users, row_of = np.unique(tu[keep], return_inverse=True)
    n_relevant = np.bincount(row_of, minlength=len(test_users)).astype(np.int64)
    known = ti[keep] >= 0
    hits = csr_matrix(
        (np.ones(int(known.sum()), np.float32), (row_of[known], ti[keep][known])),
        shape=(len(test_users), len(items)),
    )
    hits.sum_duplicates()
    return Split(data, users, items, test_users.astype(np.int64), Truth(hits, n_relevant))


@dataclass
class Scored:
    """One model fitted on a split's train and scored on its test users."""

    per_user: dict[str, NDArray[np.float64]]
    catalog: dict[str, float]
    fit_seconds: float
    recommend_seconds: float

    def mean(self, metric: str) -> float:
        """Mean over test users of a per-user metric, or a catalogue metric."""
        if metric in self.catalog:
            return self.catalog[metric]
        return float(np.mean(self.per_user[metric])) if len(self.per_user[metric]) else 0.0


def score_model(
    model: Recommender[Any],
    split: Split,
    *,
    ks: Sequence[int] = (10, 20),
    options: FitOptions | None = None,
) -> Scored:
    """Fit ``model`` on the split's train, rank every item for each test user (training items
    excluded) and compute the metrics."""
    t0 = time.perf_counter()
    model.fit(split.train, options or FitOptions())
    t1 = time.perf_counter()
    k_max = max(ks)
    recs = model.recommend(split.test_users, k_max, exclude=split.train.matrix()).item_idx
    t2 = time.perf_counter()
    per_user = per_user_metrics(recs, split.truth, ks)
    item_users = np.diff(split.train.matrix().tocsc().indptr)
    catalog = catalog_metrics(recs, min(ks), item_users, split.train.n_users)
    return Scored(per_user, catalog, t1 - t0, t2 - t1)
