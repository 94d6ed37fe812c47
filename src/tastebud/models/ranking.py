"""Ranking helpers shared by the models: top-k selection and per-user standardisation."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy.sparse import csr_matrix

__all__ = ["Recommendations", "standardise", "top_k"]


@dataclass(frozen=True)
class Recommendations:
    """Top-k items per requested user: ``item_idx[r]`` and ``scores[r]`` for the ``r``-th user,
    best first, ``-1`` / ``-inf`` padding where fewer than ``k`` items qualify."""

    item_idx: NDArray[np.int32]
    scores: NDArray[np.float32]

    def __iter__(self) -> Iterator[NDArray[Any]]:
        yield self.item_idx
        yield self.scores


def top_k(
    scores: NDArray[np.floating[Any]],
    k: int,
    exclude: csr_matrix | None = None,
    rows: NDArray[np.integer[Any]] | None = None,
) -> Recommendations:
    """Best ``k`` columns per row of a dense score block, excluding ``exclude[rows]`` entries.

    Ties are broken by the lower item index, so results are deterministic.
    """
    s = np.array(scores, dtype=np.float32, copy=True)
    n_rows, n_items = s.shape
    if exclude is not None and exclude.nnz:
        ex = exclude if rows is None else exclude[np.asarray(rows)]
        r, c = ex.nonzero()
        s[r, c] = -np.inf
    k_eff = min(k, n_items)
    items = np.full((n_rows, k), -1, dtype=np.int32)
    out = np.full((n_rows, k), -np.inf, dtype=np.float32)
    if k_eff <= 0 or n_rows == 0:
        return Recommendations(items, out)
    # A lower bound for each row's k-th best score, cheaply: the k-th best of the maxima of
    # blocks of 64 columns (k block maxima are k distinct scores at least that high). Only
    # scores above it are sorted, exactly, by (score desc, item asc): 5-10x faster than an
    # argpartition over the whole row, and ties break deterministically.
    block = 64
    n_blocks = -(-n_items // block)
    padded = s
    if n_blocks * block != n_items:
        fill = np.full((n_rows, n_blocks * block - n_items), -np.inf, np.float32)
        padded = np.concatenate([s, fill], axis=1)
    maxima = padded.reshape(n_rows, n_blocks, block).max(axis=2)
    if n_blocks > k_eff:
        threshold = -np.partition(-maxima, k_eff - 1, axis=1)[:, k_eff - 1]
    else:
        threshold = np.full(n_rows, -np.inf, np.float32)
    # Only blocks whose maximum reaches the threshold can hold a top-k score.
    br, bc = np.nonzero((maxima >= threshold[:, None]) & np.isfinite(maxima))
    vals = padded.reshape(n_rows, n_blocks, block)[br, bc].ravel()
    r = np.repeat(br, block)
    c = (bc[:, None] * block + np.arange(block)).ravel()
    sel = (vals >= threshold[r]) & np.isfinite(vals)
    r, c, v = r[sel], c[sel], vals[sel]
    order = np.lexsort((c, -v, r))
    r, c, v = r[order], c[order], v[order]
    rank = np.arange(len(r)) - np.searchsorted(r, r)
    keep = rank < k_eff
    items[r[keep], rank[keep]] = c[keep]
    out[r[keep], rank[keep]] = v[keep]
    return Recommendations(items, out)


def standardise(x: NDArray[np.float32]) -> NDArray[np.float32]:
    """Each row (last axis) standardised over its finite entries, so that scores of different
    sources become comparable; non-finite entries become ``-inf``, a row without a finite entry
    all zeros.

    >>> standardise(np.array([1.0, 3.0, -np.inf], np.float32)).tolist()
    [-1.0, 1.0, -inf]
    """
    x = np.asarray(x, dtype=np.float32)
    if x.shape[-1] == 0:
        return x.copy()
    finite = np.isfinite(x)
    if finite.all():  # the usual case: no masking, and a third fewer passes than x.std()
        scaled: NDArray[np.float32] = x - x.mean(axis=-1, keepdims=True)
        var = np.einsum("...i,...i->...", scaled, scaled)[..., None] / max(x.shape[-1], 1)
        std = np.sqrt(var)
        scaled /= np.where(std > 0, std, 1.0).astype(np.float32)
        return scaled
    n = np.maximum(finite.sum(axis=-1, keepdims=True), 1)
    mean = np.where(finite, x, 0.0).sum(axis=-1, keepdims=True) / n
    centred = np.where(finite, x - mean, 0.0)
    std = np.sqrt((centred**2).sum(axis=-1, keepdims=True) / n)
    out = np.where(finite, centred / np.where(std > 0, std, 1.0), -np.inf)
    return np.where(finite.any(axis=-1, keepdims=True), out, 0.0).astype(np.float32)
