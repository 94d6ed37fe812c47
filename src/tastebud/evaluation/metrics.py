"""Ranking metrics, per user, with bootstrap confidence intervals.

Definitions (``R_u`` = the user's top-k list, ``T_u`` = the user's test items, ``rel_i`` = 1 if
the ``i``-th recommended item is in ``T_u``; binary relevance throughout):

- ``ndcg@k`` = Σ_i rel_i / log2(i + 1), divided by the ideal DCG over ``min(|T_u|, k)`` hits;
- ``mrr@k`` = 1 / rank of the first hit in the top k (0 without a hit);
- ``precision@k`` = hits in the top k / k;
- ``recall@k`` = hits in the top k / |T_u|;
- ``map@k`` = Σ_i precision@i · rel_i / min(|T_u|, k);
- ``hit@k`` = 1 if any hit in the top k;
- ``coverage@k`` = distinct items in all users' top k / catalogue size (one number, no CI);
- ``novelty@k`` = mean over recommended items of -log2(share of training users who had the
  item), the "surprise" of a list;
- ``longtail@k`` = share of recommended items in the long tail: outside the short head, the 20%
  most popular items (by training users) among those with any interaction (``long_tail_items``).

Per-user metrics are averaged over test users; the 95% interval is the percentile bootstrap over
users (1000 resamples, seeded).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.sparse import csr_matrix

__all__ = [
    "PER_USER",
    "Truth",
    "bootstrap_ci",
    "catalog_metrics",
    "long_tail_items",
    "per_user_metrics",
]

PER_USER = ("ndcg", "mrr", "precision", "recall", "map", "hit")
"""Metric families computed per user (each at any cut-off k)."""


@dataclass(frozen=True)
class Truth:
    """Test items per evaluated user: ``hits`` marks known items (users x items, one row per
    evaluated user) and ``n_relevant`` counts all of them, including items the model could not
    know (absent from training): those count in the denominators but can never be hit."""

    hits: csr_matrix
    n_relevant: NDArray[np.int64]


def _hit_matrix(recs: NDArray[np.int32], truth: Truth) -> NDArray[np.bool_]:
    """``rel[u, i]``: whether the ``i``-th recommendation of user ``u`` is a test item."""
    rows = np.repeat(np.arange(recs.shape[0]), recs.shape[1])
    cols = recs.ravel()
    ok = cols >= 0
    rel = np.zeros(recs.size, dtype=bool)
    if ok.any():  # (no item recommended at all: nothing to look up)
        rel[ok] = np.asarray(truth.hits[rows[ok], cols[ok]]).ravel() > 0
    return rel.reshape(recs.shape)


def per_user_metrics(
    recs: NDArray[np.int32], truth: Truth, ks: Sequence[int]
) -> dict[str, NDArray[np.float64]]:
    """Every per-user metric at every ``k`` in ``ks`` (``recs`` must have at least max(ks)
    columns). Keys are ``"ndcg@10"`` and so on.

    >>> t = Truth(csr_matrix(np.array([[0, 1, 0, 1]])), np.array([2]))
    >>> m = per_user_metrics(np.array([[0, 3, 1]], dtype=np.int32), t, [2])
    >>> round(float(m["ndcg@2"][0]), 4), float(m["precision@2"][0]), float(m["mrr@2"][0])
    (0.3869, 0.5, 0.5)
    """
    rel = _hit_matrix(recs, truth).astype(np.float64)
    n_rel = truth.n_relevant.astype(np.float64)
    out: dict[str, NDArray[np.float64]] = {}
    for k in ks:
        r = rel[:, :k]
        disc = 1.0 / np.log2(np.arange(2, k + 2))
        dcg = r @ disc
        ideal_n = np.minimum(n_rel, k).astype(np.int64)
        idcg = np.concatenate([[0.0], np.cumsum(disc)])[ideal_n]
        hits = r.sum(axis=1)
        first = np.where(r.any(axis=1), r.argmax(axis=1) + 1, 0)
        prec_at = np.cumsum(r, axis=1) / np.arange(1, k + 1)
        with np.errstate(divide="ignore", invalid="ignore"):
            out[f"ndcg@{k}"] = np.where(idcg > 0, dcg / idcg, 0.0)
            out[f"mrr@{k}"] = np.where(first > 0, 1.0 / np.maximum(first, 1), 0.0)
            out[f"precision@{k}"] = hits / k
            out[f"recall@{k}"] = np.where(n_rel > 0, hits / n_rel, 0.0)
            out[f"map@{k}"] = np.where(ideal_n > 0, (prec_at * r).sum(axis=1) / ideal_n, 0.0)
            out[f"hit@{k}"] = (hits > 0).astype(np.float64)
    return out


def long_tail_items(item_counts: NDArray[np.integer], head_share: float = 0.2) -> NDArray[np.bool_]:
    """Items in the long tail: all but the most popular ``head_share`` of the catalogue items
    that have any interaction (the "short head"), by training interaction count.

    >>> long_tail_items(np.array([10, 1, 5, 0, 2]), head_share=0.25).tolist()
    [False, True, True, True, True]
    """
    n_head = max(1, int(round(head_share * int((item_counts > 0).sum()))))
    head = np.argsort(-item_counts, kind="stable")[:n_head]
    tail = np.ones(len(item_counts), dtype=bool)
    tail[head] = False
    return tail


def catalog_metrics(
    recs: NDArray[np.int32], k: int, item_users: NDArray[np.integer], n_users: int
) -> dict[str, float]:
    """``coverage@k``, ``novelty@k`` and ``longtail@k`` of the top-k lists.

    ``item_users``: per item, how many training users interacted with it.

    >>> r = np.array([[0, 1], [0, 2]], dtype=np.int32)
    >>> catalog_metrics(r, 2, np.array([4, 2, 1, 0]), 4)["coverage@2"]
    0.75
    """
    top = recs[:, :k]
    valid = top[top >= 0]
    n_items = len(item_users)
    if not len(valid):
        return {f"coverage@{k}": 0.0, f"novelty@{k}": 0.0, f"longtail@{k}": 0.0}
    share = np.maximum(item_users[valid], 1) / max(n_users, 1)
    tail = long_tail_items(np.asarray(item_users))
    return {
        f"coverage@{k}": len(np.unique(valid)) / n_items,
        f"novelty@{k}": float(np.mean(-np.log2(share))),
        f"longtail@{k}": float(np.mean(tail[valid])),
    }


def bootstrap_ci(
    values: NDArray[np.float64], *, n_boot: int = 1000, seed: int = 0, level: float = 0.95
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``values`` (resampling users).

    >>> lo, hi = bootstrap_ci(np.array([0.0, 1.0] * 50))
    >>> 0.35 < lo < 0.5 < hi < 0.65
    True
    """
    n = len(values)
    if n == 0:
        return (0.0, 0.0)
    rng = np.random.default_rng(seed)
    means = np.empty(n_boot)
    for b in range(0, n_boot, 100):  # blocks of 100 resamples: bounded memory on big test sets
        m = min(100, n_boot - b)
        idx = rng.integers(0, n, size=(m, n))
        means[b : b + m] = values[idx].mean(axis=1)
    alpha = (1 - level) / 2
    return (float(np.quantile(means, alpha)), float(np.quantile(means, 1 - alpha)))
