"""Per-feature statistics of a snapshot, and the checks that warn or fail a build."""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

import numpy as np
import polars as pl

from tastebud.errors import InvalidInput
from tastebud.features.definitions import FeatureDef

__all__ = ["BrokenInvariant", "check", "feature_stats"]


class BrokenInvariant(InvalidInput):
    """A feature broke a hard rule (a negative count, a duplicate entity): the build fails."""

    code = "broken_invariant"


def _numeric(series: pl.Series) -> dict[str, Any]:
    values = series.drop_nulls().cast(pl.Float64).to_numpy()
    if values.size == 0:
        return {}
    qs = np.quantile(values, [0.05, 0.25, 0.5, 0.75, 0.95])
    lo, hi = float(values.min()), float(values.max())
    counts, edges = np.histogram(values, bins=10, range=(lo, hi if hi > lo else lo + 1))
    return {
        "min": lo,
        "max": hi,
        "mean": float(values.mean()),
        "quantiles": {
            "p5": float(qs[0]),
            "p25": float(qs[1]),
            "p50": float(qs[2]),
            "p75": float(qs[3]),
            "p95": float(qs[4]),
        },
        "histogram": {"edges": [float(e) for e in edges], "counts": [int(c) for c in counts]},
    }


def feature_stats(frame: pl.DataFrame, definition: FeatureDef) -> dict[str, Any]:
    """Null rate and distribution of one feature column (kept for drift detection)."""
    series = frame.get_column(definition.name)
    n = series.len()
    out: dict[str, Any] = {
        "version": definition.version,
        "count": n,
        "null_rate": (series.null_count() / n) if n else 1.0,
    }
    if definition.kind in ("int", "float", "rate", "bool"):
        out.update(_numeric(series))
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
    stats: dict[str, dict[str, Any]],
    definitions: dict[str, FeatureDef],
    previous: dict[str, dict[str, Any]] | None,
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
