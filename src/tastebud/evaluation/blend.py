"""Scoring weighted blends of fitted models on a validation split without refitting them.

A blend ranks each user's items by ``sum_k w_k * standardise(scores_k)`` (what
``tastebud_hybrid`` does). :class:`BlendPool` scores every part once, keeps for each user the
union of every part's best ``depth`` items with each part's standardised score for them, and
then scores any weights in milliseconds: the blend's top 10 always comes from the pool when a
single part is on, and in practice whenever the parts agree enough for the blend to be worth
having (an item outside every part's top ``depth`` rarely makes a blend's top 10).
:meth:`BlendPool.exact` scores weights over the whole catalogue, as the fitted blend would.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from tastebud.evaluation.metrics import per_user_metrics
from tastebud.evaluation.protocol import Split
from tastebud.models import Recommender, standardise, top_k

__all__ = ["BlendPool", "weights_of"]

_CHUNK = 1024
_K = 10
_METRIC = "ndcg@10"


def _blended(
    parts: Sequence[Recommender[Any]], weights: Sequence[float], users: NDArray[np.int64]
) -> NDArray[np.float32]:
    total: NDArray[np.float32] | None = None
    for model, w in zip(parts, weights, strict=True):
        if w > 0:
            block = np.float32(w) * standardise(model.scores(users))
            total = block if total is None else total + block
    assert total is not None, "a blend needs a weight above 0"
    return total


@dataclass
class BlendPool:
    """Every part's standardised scores for each validation user's candidate items."""

    split: Split
    parts: tuple[Recommender[Any], ...]
    items: NDArray[np.int32]
    """``users x (parts * depth)`` candidate items per user, ascending (``-1``: padding)."""
    values: NDArray[np.float32]
    """``parts x users x (parts * depth)``: each part's standardised score for each candidate
    (``-inf``: padding, or an item the user already had)."""

    @classmethod
    def build(
        cls, parts: Sequence[Recommender[Any]], split: Split, *, depth: int = 100
    ) -> BlendPool:
        """Score ``split.test_users`` with every (fitted) part, in chunks of bounded memory."""
        users = split.test_users
        n_items = split.train.n_items
        depth = min(n_items, max(_K, depth))
        exclude = split.train.matrix()
        width = depth * len(parts)
        items = np.full((len(users), width), -1, np.int32)
        values = np.full((len(parts), len(users), width), -np.inf, np.float32)
        for lo in range(0, len(users), _CHUNK):
            chunk = users[lo : lo + _CHUNK]
            seen = exclude[chunk].nonzero()
            blocks = []
            for model in parts:
                block = standardise(model.scores(chunk))
                block[seen] = -np.inf
                blocks.append(block)
            best = [
                np.argsort(-b, axis=1)[:, :depth]
                if depth == n_items
                else np.argpartition(-b, depth - 1, axis=1)[:, :depth]
                for b in blocks
            ]
            cand = np.sort(np.concatenate(best, axis=1), axis=1)
            repeated = np.zeros(cand.shape, dtype=bool)
            repeated[:, 1:] = cand[:, 1:] == cand[:, :-1]
            rows = slice(lo, lo + len(chunk))
            items[rows] = np.where(repeated, -1, cand)
            for p, block in enumerate(blocks):
                got = np.take_along_axis(block, cand, axis=1)
                values[p, rows] = np.where(repeated, -np.inf, got)
        return cls(split, tuple(parts), items, values)

    def score(self, weights: Sequence[float]) -> float:
        """Mean validation NDCG@10 of the blend with these weights (one per part), ranked over
        the pool; ties go to the lower item index, as ``top_k`` breaks them."""
        total: NDArray[np.float32] | None = None
        for p, w in enumerate(weights):
            if w > 0:
                block = np.float32(w) * self.values[p]
                total = block if total is None else total + block
        if total is None:
            return 0.0
        order = np.argsort(-total, axis=1, kind="stable")[:, :_K]
        recs = np.take_along_axis(self.items, order, axis=1)
        recs[~np.isfinite(np.take_along_axis(total, order, axis=1))] = -1
        return self._mean(recs)

    def exact(self, weights: Sequence[float]) -> float:
        """Mean validation NDCG@10 of the blend ranked over the whole catalogue."""
        users = self.split.test_users
        exclude = self.split.train.matrix()
        recs = np.full((len(users), _K), -1, np.int32)
        for lo in range(0, len(users), _CHUNK):
            chunk = users[lo : lo + _CHUNK]
            total = _blended(self.parts, weights, chunk)
            recs[lo : lo + len(chunk)] = top_k(total, _K, exclude, chunk).item_idx
        return self._mean(recs)

    def _mean(self, recs: NDArray[np.int32]) -> float:
        values = per_user_metrics(recs, self.split.truth, (_K,))[_METRIC]
        return float(np.mean(values)) if len(values) else 0.0


def weights_of(keys: Sequence[str], params: Mapping[str, Any]) -> list[float]:
    """The weights ``w_<key>`` of ``params`` in the order of ``keys`` (missing: 0)."""
    return [float(params.get(f"w_{k}", 0.0)) for k in keys]
