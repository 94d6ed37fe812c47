"""Per-feature statistics of a snapshot, the checks that warn or fail a build, and the tally
of recoverable data problems that a build reports as :class:`~tastebud.errors.DataWarning`."""

from __future__ import annotations

import math
import warnings
from collections import Counter
from collections.abc import Mapping
from typing import NotRequired

import numpy as np
import polars as pl
from typing_extensions import TypedDict

from tastebud.errors import DataWarning, InvalidInput
from tastebud.features.definitions import FeatureDef

__all__ = [
    "BrokenInvariant",
    "DataProblems",
    "FeatureStats",
    "Histogram",
    "Quantiles",
    "check",
    "feature_stats",
]


class Quantiles(TypedDict):
    """Quantiles of a numeric feature."""

    p5: float
    p25: float
    p50: float
    p75: float
    p95: float


class Histogram(TypedDict):
    """Ten equal-width bins between the minimum and the maximum."""

    edges: list[float]
    counts: list[int]


class FeatureStats(TypedDict):
    """Statistics of one feature in a snapshot (stored as JSON in ``feature_snapshots.stats``,
    read back for drift checks and the feature review). The distribution keys are present for
    numbers with at least one value (``min`` ... ``histogram``) and for categories and lists
    (``top``)."""

    version: int
    count: int
    null_rate: float
    min: NotRequired[float]
    max: NotRequired[float]
    mean: NotRequired[float]
    quantiles: NotRequired[Quantiles]
    histogram: NotRequired[Histogram]
    top: NotRequired[dict[str, int]]
    """The ten most frequent values (or list elements) and their counts."""


class DataProblems:
    """Counts of recoverable data problems, by description, summed over a build's partitions so
    that each problem is reported once with its total.

    >>> problems = DataProblems()
    >>> problems.add("impression events without a readable item_ids list", 3)
    >>> problems.add("impression events without a readable item_ids list", 2)
    >>> problems.add("feature_usage events without a feature", 0)  # nothing to report
    >>> problems.messages()
    ['5 impression events without a readable item_ids list']
    """

    def __init__(self) -> None:
        self._counts: Counter[str] = Counter()
        self._notes: list[str] = []

    def add(self, problem: str, count: int) -> None:
        """Count ``count`` rows or entities with ``problem`` (a count of 0 is ignored)."""
        if count > 0:
            self._counts[problem] += int(count)

    def note(self, message: str) -> None:
        """Record a problem that is not a count (an empty window, a statistics check)."""
        if message not in self._notes:
            self._notes.append(message)

    def messages(self) -> list[str]:
        """One line per problem, counted ones first (count first, in the order first seen),
        then the notes."""
        return [f"{n:,} {problem}" for problem, n in self._counts.items()] + self._notes

    def warn(self, *, stacklevel: int = 2) -> list[str]:
        """Issue one :class:`DataWarning` per problem; returns the messages.

        Args:
            stacklevel: As for ``warnings.warn``, counted from the caller of this method (2:
                the warning points at the caller's caller).
        """
        out = self.messages()
        for message in out:
            warnings.warn(message, DataWarning, stacklevel=stacklevel + 1)
        return out


class BrokenInvariant(InvalidInput):
    """A feature broke a hard rule (a negative count, a duplicate entity): the build fails."""

    code = "broken_invariant"


def _numeric(series: pl.Series, out: FeatureStats) -> None:
    """Add the distribution of a numeric column to ``out`` (nothing when all null)."""
    values = series.drop_nulls().cast(pl.Float64).to_numpy()
    if values.size == 0:
        return
    qs = np.quantile(values, [0.05, 0.25, 0.5, 0.75, 0.95])
    lo, hi = float(values.min()), float(values.max())
    counts, edges = np.histogram(values, bins=10, range=(lo, hi if hi > lo else lo + 1))
    out["min"] = lo
    out["max"] = hi
    out["mean"] = float(values.mean())
    out["quantiles"] = {
        "p5": float(qs[0]),
        "p25": float(qs[1]),
        "p50": float(qs[2]),
        "p75": float(qs[3]),
        "p95": float(qs[4]),
    }
    out["histogram"] = {"edges": [float(e) for e in edges], "counts": [int(c) for c in counts]}


def feature_stats(frame: pl.DataFrame, definition: FeatureDef) -> FeatureStats:
    """Null rate and distribution of one feature column (kept for drift detection)."""
    series = frame.get_column(definition.name)
    n = series.len()
    out: FeatureStats = {
        "version": definition.version,
        "count": n,
        "null_rate": (series.null_count() / n) if n else 1.0,
    }
    if definition.kind in ("int", "float", "rate", "bool"):
        _numeric(series, out)
    elif definition.kind == "category":
        top = series.drop_nulls().value_counts(sort=True).head(10)
        out["top"] = {str(k): int(v) for k, v in top.iter_rows()}
    elif definition.kind == "list":
        counter: Counter[str] = Counter()
        for values in series.drop_nulls().to_list():
            counter.update(values)
        out["top"] = dict(counter.most_common(10))
    return out


def check(
    stats: Mapping[str, FeatureStats],
    definitions: Mapping[str, FeatureDef],
    previous: Mapping[str, FeatureStats] | None,
) -> list[str]:
    """Warnings for suspicious values; raises for broken invariants.

    Warns: a rate outside [0, 1]; a feature all null now that was not in the previous snapshot.
    Fails: a number below its definition's hard lower bound (e.g. a negative count).
    """
    warnings: list[str] = []
    for name, s in stats.items():
        d = definitions[name]
        low = s.get("min")
        if d.lower is not None and low is not None and low < d.lower:
            raise BrokenInvariant(f"{name}: minimum {low} is below {d.lower}")
        if d.kind == "rate" and low is not None and (low < 0 or s["max"] > 1):
            warnings.append(f"{name}: a rate outside [0, 1] (min {low}, max {s['max']})")
        before = (previous or {}).get(name)
        if s["count"] and s["null_rate"] == 1.0 and before and before.get("null_rate", 1.0) < 1.0:
            warnings.append(f"{name}: all null, was {before['null_rate']:.0%} null before")
        mean = s.get("mean")
        if mean is not None and not math.isfinite(mean):
            raise BrokenInvariant(f"{name}: non-finite values")
    return warnings
