"""The worker's periodic reports: the monthly feature review and the quarterly model bake-off."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TypedDict

from tastebud.evaluation import evaluate, render_html
from tastebud.features import FEATURES
from tastebud.features.offline import newest_snapshot
from tastebud.features.stats import FeatureStats
from tastebud.files import private_dir, write_private
from tastebud.training.context import JobContext, training_dataset

__all__ = ["FeatureReview", "FeatureReviewEntry", "NoStats", "bakeoff", "feature_review"]


class NoStats(TypedDict):
    """``{}``: a feature without statistics in the snapshot."""


class FeatureReviewEntry(TypedDict):
    """One feature in the feature review."""

    entity: str
    version: int
    stats: FeatureStats | NoStats
    """Its statistics in the newest snapshot, as stored (``{}``: none)."""
    importance: float | None
    """Summed importance in the production predictors (``None``: none uses it)."""
    status: str
    """``in use``, ``unused`` or ``deprecated``."""


class FeatureReview(TypedDict):
    """``feature-review-<time>.json``."""

    snapshot_id: int | None
    features: dict[str, FeatureReviewEntry]
    unused: list[str]
    deprecated: list[str]


def _stamp() -> str:
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime())


def _used_features(ctx: JobContext) -> dict[str, float]:
    """Importance of each feature in the production predictors (summed)."""
    used: dict[str, float] = {}
    for name in ctx.registry.names():
        mv = ctx.registry.resolve(name, "production")
        if mv is None or mv.kind != "predictor":
            continue
        for feature, value in (mv.metrics.get("importance") or {}).items():
            base = feature.split(".", 1)[0].split("=", 1)[0]
            used[base] = used.get(base, 0.0) + float(value)
    return used


def feature_review(ctx: JobContext, reports_dir: Path) -> Path:
    """Write ``feature-review-<time>.md`` and ``.json``: every feature's latest statistics and
    drift warnings, which features no production predictor uses (importance 0 or absent), and
    which are deprecated. Returns the Markdown path."""
    row = newest_snapshot(ctx.store)
    stats: dict[str, FeatureStats] = {} if row is None else dict(row["stats"] or {})
    used = _used_features(ctx)
    predictors_live = bool(used)
    snapshot_id: int | None = None if row is None else row["id"]
    features: dict[str, FeatureReviewEntry] = {}
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    lines = [
        "# Feature review",
        "",
        f"Snapshot {snapshot_id}; generated {when}.",
        "",
        "| feature | entity | version | null rate | mean | used (importance) | status |",
        "|---|---|---|---|---|---|---|",
    ]
    unused, deprecated = [], []
    for d in FEATURES:
        st: FeatureStats | NoStats = stats.get(d.name) or {}
        importance = used.get(d.name)
        status = (
            "deprecated"
            if d.deprecated
            else (
                "unused" if predictors_live and d.entity == "user" and not importance else "in use"
            )
        )
        if d.deprecated:
            deprecated.append(d.name)
        elif status == "unused":
            unused.append(d.name)
        features[d.name] = {
            "entity": d.entity,
            "version": d.version,
            "stats": st,
            "importance": importance,
            "status": status,
        }
        mean = st.get("mean")
        lines.append(
            f"| {d.name} | {d.entity} | {d.version} | {st.get('null_rate', float('nan')):.3f} | "
            f"{'-' if mean is None else f'{mean:.4g}'} | "
            f"{'-' if importance is None else f'{importance:.4f}'} | {status} |"
        )
    review: FeatureReview = {
        "snapshot_id": snapshot_id,
        "features": features,
        "unused": unused,
        "deprecated": deprecated,
    }
    lines += [
        "",
        f"Unused by the production predictors: {', '.join(unused) or 'none'}"
        + ("" if predictors_live else " (no predictor in production yet)"),
        f"Deprecated: {', '.join(deprecated) or 'none'}",
    ]
    private_dir(reports_dir)
    stamp = _stamp()
    write_private(
        reports_dir / f"feature-review-{stamp}.json", json.dumps(review, indent=2, default=str)
    )
    path = reports_dir / f"feature-review-{stamp}.md"
    write_private(path, "\n".join(lines) + "\n")
    ctx.log(f"feature review: {path}")
    return path


def bakeoff(ctx: JobContext, reports_dir: Path, models: list[str] | None = None) -> Path:
    """Evaluate every model family (or ``models``) on the latest data under the DESIGN.md
    protocol and write ``bakeoff-<time>.html`` and ``.json``. Returns the HTML path."""
    dataset, _ = training_dataset(ctx)
    result = evaluate(dataset, models, log=lambda m: ctx.log(f"  {m}"))
    private_dir(reports_dir)
    stamp = _stamp()
    write_private(reports_dir / f"bakeoff-{stamp}.json", json.dumps(result.to_json(), indent=2))
    path = reports_dir / f"bakeoff-{stamp}.html"
    write_private(path, render_html(result))
    ctx.log(f"bake-off: {path}")
    return path
