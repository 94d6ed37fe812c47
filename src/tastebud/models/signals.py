"""What the data carries besides "this user met this item": interaction weights, and whether its
timestamps are real.

**Weights** (play counts, durations, ratings, the interaction pipeline's event weights) enter a
model through one of four transforms, chosen per model on validation (``weighting`` in every
config that can use them):

- ``binary``: 1 per (user, item), whatever the weight;
- ``log``: ``log(1 + w)``, which keeps the order of counts but tames their tail;
- ``bm25``: BM25 weighting with ``K1=100, B=0.8`` in the orientation of ``implicit``'s own
  Last.fm example (``bm25_weight`` of the item x user matrix): a weight is judged against the
  item's total (length normalisation) and scaled down for users who met many items (inverse
  document frequency, Lucene's, which stays above 0);
- ``raw``: ``w`` itself (for ALS this is the confidence ``1 + alpha * w`` of Hu, Koren and Volinsky
  2008).

Every transform except ``binary`` is rescaled so that its non-zero values average 1: the ridge
penalties and confidence scalings of the search spaces then mean the same whatever the units of
the weights.

**Time** is real when it orders what users did. Importers give data without a time column a
synthetic one (one second per line of the file, see ``tastebud.importers.interactions``), and a
file sorted by user and then by count gives each user's history an order that says nothing
about what comes next. :func:`is_synthetic_time` recognises made-up time by its regularity:
clockwork steps over the whole data or within every user's history, where observed times are
irregular. Models treat such data as having no time.
"""

from __future__ import annotations

from typing import Any, Literal, get_args

import numpy as np
from numpy.typing import NDArray
from scipy.sparse import csr_matrix

__all__ = ["WEIGHTINGS", "Weighting", "is_synthetic_time", "transform_weights"]

Weighting = Literal["binary", "log", "bm25", "raw"]
"""How interaction weights enter a model (see the module docstring)."""
WEIGHTINGS: tuple[Weighting, ...] = get_args(Weighting)
"""Every weighting, in the order of :data:`Weighting`."""

_MIN_STEPS = 10
"""With fewer steps between a user's consecutive interactions, time is taken at its word."""
_CLOCKWORK = 0.8
"""The share of gaps equal to one step that makes time clockwork."""


def transform_weights(summed: csr_matrix, weighting: Weighting) -> csr_matrix:
    """The user x item matrix of summed weights (``float32``, one entry per pair) under a
    weighting, rescaled so that non-zero values average 1 (``binary``: all 1).

    >>> m = csr_matrix(np.array([[1.0, 9.0, 0.0], [0.0, 3.0, 3.0]], np.float32))
    >>> transform_weights(m, "binary").toarray().tolist()
    [[1.0, 1.0, 0.0], [0.0, 1.0, 1.0]]
    >>> [round(v, 3) for v in transform_weights(m, "raw").data.tolist()]
    [0.25, 2.25, 0.75, 0.75]
    >>> transform_weights(m, "log").data.mean().round(6)
    np.float32(1.0)

    Raises:
        ValueError: an unknown weighting, or a negative weight with ``log``.
    """
    out = csr_matrix(summed, dtype=np.float32, copy=True)
    out.sum_duplicates()
    if weighting == "binary":
        out.data[:] = 1.0
        return out
    if weighting == "raw":
        values = out.data.astype(np.float64)
    elif weighting == "log":
        if out.nnz and float(out.data.min()) < 0:
            raise ValueError("weighting 'log' needs weights of at least 0")
        values = np.log1p(out.data.astype(np.float64))
    elif weighting == "bm25":
        values = _bm25(out)
    else:
        raise ValueError(f"unknown weighting {weighting!r}; known: {', '.join(WEIGHTINGS)}")
    positive = values[values > 0]
    scale = float(positive.mean()) if len(positive) else 1.0
    out.data = (np.maximum(values, 0.0) / (scale or 1.0)).astype(np.float32)
    return out


def _bm25(m: csr_matrix, k1: float = 100.0, b: float = 0.8) -> NDArray[np.float64]:
    """BM25 values of ``m``'s entries (in ``m.data`` order), items as documents and users as
    terms: the formula of ``implicit.nearest_neighbours.bm25_weight`` applied to ``m.T``, with
    Lucene's inverse document frequency, which stays above 0 for a user who met most items."""
    n_users, n_items = m.shape
    rows = np.repeat(np.arange(n_users), np.diff(m.indptr))
    data = m.data.astype(np.float64)
    df = np.diff(m.indptr).astype(np.float64)
    idf = np.log1p((n_items - df + 0.5) / (df + 0.5))  # Lucene's: above 0 however many items
    item_sums = np.bincount(m.indices, weights=data, minlength=n_items)
    present = item_sums[item_sums > 0]
    average = float(present.mean()) if len(present) else 1.0
    length_norm = (1.0 - b) + b * item_sums / (average or 1.0)
    out: NDArray[np.float64] = data * (k1 + 1.0) / (k1 * length_norm[m.indices] + data) * idf[rows]
    return out


def is_synthetic_time(user: NDArray[np.integer[Any]], ts: NDArray[np.floating[Any]]) -> bool:
    """Whether timestamps look made up rather than observed: clockwork steps, either over the
    whole data (all distinct and evenly spaced: line numbers) or within every user's history
    (the same step between any two consecutive interactions of a user: ranks or positions).
    Observed times are irregular.

    >>> users = np.repeat(np.arange(20), 5)
    >>> is_synthetic_time(users, np.arange(100.0))  # a file, one second per line
    True
    >>> is_synthetic_time(users, np.tile(np.arange(5.0), 20))  # each user's position 0..4
    True
    >>> rng = np.random.default_rng(0)
    >>> is_synthetic_time(users, rng.uniform(0, 1e6, 100))  # when things happened
    False
    """
    user = np.asarray(user)
    ts = np.asarray(ts, dtype=np.float64)
    n = len(user)
    if n < 2 or float(np.ptp(ts)) == 0.0:
        return False
    order = np.lexsort((ts, user))
    same_user = user[order][1:] == user[order][:-1]
    within = np.diff(ts[order])[same_user]
    if len(within) < _MIN_STEPS:
        return False
    if _clockwork(within):
        return True
    distinct = np.unique(ts)
    return len(distinct) >= 0.99 * n and _clockwork(np.diff(distinct))


def _clockwork(gaps: NDArray[np.float64]) -> bool:
    """Whether nearly all gaps are one and the same positive step."""
    values, counts = np.unique(gaps, return_counts=True)
    top = int(np.argmax(counts))
    return bool(values[top] > 0 and counts[top] >= _CLOCKWORK * len(gaps))
