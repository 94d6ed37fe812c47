"""Disparity between user groups, with its sampling noise.

The governance checklist's bias analysis compares a model's quality across the groups of each
user attribute (segment, age band, locale...): the best group's mean over the worst's. With a
few dozen users per group that ratio is mostly noise, and the largest of many noisy ratios is
larger still: judged naively, a fair model fails on small data. So each ratio comes with a
bootstrap bound, corrected for the number of pairs compared (Bonferroni):

- ``fail``: some pair's ratio is above the bound even at its lower confidence bound;
- ``pass``: otherwise, when the largest ratio of empirical-Bayes group means (each group's mean
  pulled towards the overall mean by its own noise, so that differences made of noise vanish)
  is within the bound;
- ``inconclusive``: the largest ratio is above the bound, but within sampling noise (more users
  per group are needed to say).

Only groups of at least ``min_users`` are judged (smaller ones are reported, not judged).

Example::

    >>> rng = np.random.default_rng(0)
    >>> fair = {"a": rng.random(400), "b": rng.random(400)}
    >>> estimate_disparity(fair).verdict(2.0)
    'pass'
    >>> unfair = {"a": rng.random(400), "b": rng.random(400) / 4}
    >>> estimate_disparity(unfair).verdict(2.0)
    'fail'
    >>> estimate_disparity({"a": rng.random(30), "b": rng.random(30)}).verdict(2.0)
    'not_judged'

"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "Disparity",
    "MIN_JUDGED_USERS",
    "Verdict",
    "estimate_disparity",
]

MIN_JUDGED_USERS = 50
"""Groups smaller than this are reported but not judged."""

Verdict = Literal["pass", "fail", "inconclusive", "not_judged"]
"""How a disparity compares with a bound (see the module docstring)."""


@dataclass(frozen=True)
class Disparity:
    """The disparity of one attribute's groups, with its noise (independent of any bound)."""

    ratio: float | None
    """The best judged group's mean over the worst's (``None``: fewer than two groups, or a
    worst mean of 0)."""
    shrunk: float | None
    """The same ratio of empirical-Bayes group means (each shrunk towards the overall mean by
    its own noise): the estimate judged against the bound."""
    lower: float | None
    """The largest pairwise ratio's lower confidence bound (Bonferroni-corrected; ``None``:
    unbounded, a group's mean is 0 in almost every resample)."""
    best: str | None
    worst: str | None
    groups: int
    """How many groups were judged (at least ``min_users`` users each)."""

    def verdict(self, bound: float) -> Verdict:
        """``fail`` when even the lower bound exceeds ``bound``; ``pass`` when the shrunk ratio
        is within it; ``inconclusive`` otherwise; ``not_judged`` with fewer than two groups."""
        if self.groups < 2:
            return "not_judged"
        if self.lower is None or self.lower > bound:
            return "fail"
        if self.shrunk is not None and self.shrunk <= bound:
            return "pass"
        return "inconclusive"

    def to_json(self) -> dict[str, object]:
        """JSON-ready (:meth:`from_json` reads it back)."""
        return {
            "ratio": self.ratio,
            "shrunk": self.shrunk,
            "lower": self.lower,
            "best": self.best,
            "worst": self.worst,
            "groups": self.groups,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Disparity:
        """The inverse of :meth:`to_json`."""
        return cls(
            data.get("ratio"),
            data.get("shrunk"),
            data.get("lower"),
            data.get("best"),
            data.get("worst"),
            int(data.get("groups") or 0),
        )


def estimate_disparity(
    per_user: Mapping[str, NDArray[np.floating[Any]] | list[float]],
    *,
    min_users: int = MIN_JUDGED_USERS,
    confidence: float = 0.95,
    resamples: int = 2000,
    seed: int = 0,
) -> Disparity:
    """The disparity of a per-user metric (NDCG@10 of each test user, say) across groups.

    Args:
        per_user: Group name -> the metric of each of its users.
        min_users: Groups with fewer users are not judged.
        confidence: One-sided confidence of the lower bounds, over all pairs together.
        resamples: Bootstrap resamples (users drawn with replacement within each group).
        seed: The bootstrap's seed (the judgement is reproducible).
    """
    judged = {g: np.asarray(v, np.float64) for g, v in per_user.items() if len(v) >= min_users}
    if len(judged) < 2:
        return Disparity(None, None, None, None, None, len(judged))
    names = sorted(judged)
    means = np.array([judged[g].mean() for g in names])
    best, worst = int(np.argmax(means)), int(np.argmin(means))
    ratio = None if means[worst] <= 0 else float(means[best] / means[worst])
    shrunk = _shrink(means, np.array([judged[g].var(ddof=1) / len(judged[g]) for g in names]))
    lo_s, hi_s = float(shrunk.min()), float(shrunk.max())
    shrunk_ratio = None if lo_s <= 1e-9 else hi_s / lo_s
    rng = np.random.default_rng(seed)
    boot = np.empty((resamples, len(names)))
    for k, g in enumerate(names):
        v = judged[g]
        draws = rng.integers(0, len(v), size=(resamples, len(v)))
        boot[:, k] = v[draws].mean(axis=1)
    pairs = len(names) * (len(names) - 1)  # ordered pairs: either group may be the better
    q = (1.0 - confidence) / pairs
    lower = 0.0
    for i in range(len(names)):
        for j in range(len(names)):
            if i == j or means[i] <= means[j]:
                continue
            with np.errstate(divide="ignore", invalid="ignore"):
                r = np.where(
                    boot[:, j] > 0, boot[:, i] / np.where(boot[:, j] > 0, boot[:, j], 1), np.inf
                )
            lower = max(lower, float(np.quantile(np.nan_to_num(r, posinf=1e300), q)))
    return Disparity(
        None if ratio is None else round(ratio, 4),
        None if shrunk_ratio is None else round(shrunk_ratio, 4),
        round(lower, 4) if lower < 1e300 else None,
        names[best],
        names[worst],
        len(names),
    )


def _shrink(means: NDArray[np.float64], se2: NDArray[np.float64]) -> NDArray[np.float64]:
    """Empirical-Bayes group means: each pulled towards the precision-weighted grand mean by
    its own noise (method-of-moments between-group variance). A group mean that differs only by
    noise moves to the grand mean; a real difference stays."""
    se2 = np.maximum(se2, 1e-12)
    w = 1.0 / se2
    grand = float((w * means).sum() / w.sum())
    tau2 = max(0.0, float(np.var(means, ddof=1)) - float(se2.mean()))
    return grand + tau2 / (tau2 + se2) * (means - grand)
