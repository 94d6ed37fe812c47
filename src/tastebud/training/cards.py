"""What travels with every registered model besides its parameters: lineage (the data window,
counts, feature versions, code version, parameters and seed), the monitoring reference
(``monitoring.json``: distributions that drift and quality monitoring compare against) and the
model card (``model_card.md``)."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypedDict

import numpy as np
import polars as pl
from numpy.typing import NDArray
from pydantic import JsonValue

from tastebud import __version__
from tastebud.features.offline import newest_snapshot
from tastebud.registry.records import FeatureLineage, ModelLineage, ModelMetrics
from tastebud.store import Store

__all__ = [
    "PredictorReference",
    "PredictorStats",
    "RecommenderReference",
    "RecommenderStats",
    "code_version",
    "feature_lineage",
    "model_card",
    "predictor_reference",
    "recommender_reference",
]


class RecommenderStats(TypedDict):
    """A recommender's reference distributions."""

    user_interactions: dict[str, float]
    """Quantiles (``p5`` to ``p95``) of the interactions per user."""
    item_interactions: dict[str, float]
    top10_coverage: float
    """Share of the catalogue in the sample's top-10 lists."""
    top10_share_of_top1pct_items: float
    """Share of those lists' slots taken by the 1 % most shown items."""
    sample_users: int


class RecommenderReference(TypedDict):
    """A recommender's ``monitoring.json``."""

    reference: RecommenderStats
    watch: list[str]
    """The statistics drift monitoring compares."""


class PredictorStats(TypedDict):
    """A predictor's reference distributions."""

    probability_histogram: list[float]
    """Share of predictions in each tenth of [0, 1]."""
    positive_rate: float
    features: dict[str, dict[str, float]]
    """Per feature: ``missing`` share and quantiles (``p5`` to ``p95``)."""


class PredictorReference(TypedDict):
    """A predictor's ``monitoring.json``."""

    reference: PredictorStats
    watch: list[str]
    """The statistics drift monitoring compares."""


def code_version() -> str:
    """``tastebud <version>`` plus the git commit when running from a checkout."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return f"tastebud {__version__}" + (f" ({commit})" if commit else "")


def feature_lineage(store: Store) -> FeatureLineage:
    """The newest feature snapshot's id, time and feature versions (``{}`` when none)."""
    row = newest_snapshot(store)
    if row is None:
        return {}
    return {
        "snapshot_id": row["id"],
        "as_of_ms": row["as_of_ms"],
        "versions": row["feature_versions"],
    }


def _quantiles(x: NDArray[Any]) -> dict[str, float]:
    if len(x) == 0:
        return {}
    qs = np.quantile(x.astype(np.float64), [0.05, 0.25, 0.5, 0.75, 0.95])
    return {f"p{p}": round(float(v), 6) for p, v in zip((5, 25, 50, 75, 95), qs, strict=True)}


def recommender_reference(
    pairs: pl.DataFrame, top_items: NDArray[np.int32], n_items: int
) -> RecommenderReference:
    """Reference distributions of a recommender: user activity, item popularity, and its
    top-10 lists for a sample of users (catalogue coverage, how concentrated they are)."""
    per_user = pairs.group_by("user_key").len().get_column("len").to_numpy()
    per_item = pairs.group_by("item_id").len().get_column("len").to_numpy()
    shown = top_items[top_items >= 0]
    counts = np.bincount(shown, minlength=n_items) if len(shown) else np.zeros(n_items)
    share = np.sort(counts)[::-1]
    top1 = float(share[: max(1, n_items // 100)].sum() / max(1, share.sum()))
    return {
        "reference": {
            "user_interactions": _quantiles(per_user),
            "item_interactions": _quantiles(per_item),
            "top10_coverage": round(float((counts > 0).mean()) if n_items else 0.0, 6),
            "top10_share_of_top1pct_items": round(top1, 6),
            "sample_users": int(len(top_items)),
        },
        "watch": ["top10_coverage", "user_interactions", "item_interactions"],
    }


def predictor_reference(
    probabilities: NDArray[np.float64],
    x: NDArray[np.float64],
    names: list[str],
    y: NDArray[np.int64],
) -> PredictorReference:
    """Reference distributions of a predictor: its predicted probabilities (10 bins), the
    positive rate, and each feature's quantiles and missing share."""
    hist, _ = np.histogram(probabilities, bins=10, range=(0.0, 1.0))
    features = {}
    for j, name in enumerate(names):
        col = x[:, j]
        ok = col[~np.isnan(col)]
        features[name] = {
            "missing": round(float(1 - len(ok) / max(1, len(col))), 6),
            **_quantiles(ok),
        }
    return {
        "reference": {
            "probability_histogram": (hist / max(1, hist.sum())).round(6).tolist(),
            "positive_rate": round(float(y.mean()) if len(y) else 0.0, 6),
            "features": features,
        },
        "watch": ["probability_histogram", "features"],
    }


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4f}"
    return str(v)


def model_card(
    name: str,
    kind: str,
    algorithm: str,
    params: Mapping[str, JsonValue],
    metrics: ModelMetrics,
    lineage: ModelLineage,
) -> str:
    """A Markdown model card (Mitchell et al., 2019, condensed): what the model is for, how it
    was trained and evaluated, its slices, limits and how to roll it back."""
    data = lineage.get("data", {})
    test = metrics.get("test", {})

    def fmt_time(ms: int | None) -> str:
        return "?" if ms is None else time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(ms / 1000))

    use = {
        "recommender": "Ranks catalogue items for a user (recommendations, re-ranking).",
        "predictor": f"Calibrated probability of {name} for a user, with the top reasons.",
    }[kind]
    lines = [
        f"# Model card: {name} ({algorithm})",
        "",
        f"**Intended use.** {use} Trained by Tastebud's `{lineage.get('job', 'full')}` job; "
        "serves only after promotion to `production` with a passing governance checklist.",
        "",
        "## Training data",
        "",
        f"- Window: {fmt_time(data.get('window_start_ms'))} to "
        f"{fmt_time(data.get('window_end_ms'))}",
        f"- {data.get('events', '?')} events, {data.get('users', '?')} users"
        + (f", {data.get('items')} items" if "items" in data else ""),
        f"- Users without personalization consent excluded: "
        f"{lineage.get('consent', {}).get('excluded_users', '?')}",
        "- Pseudonymous user keys only (HMAC of the raw id); no raw ids or personal data.",
        f"- Features: snapshot {lineage.get('features', {}).get('snapshot_id', 'none')}",
        "",
        "## Parameters",
        "",
        "```json",
        json.dumps(params, indent=2, sort_keys=True),
        "```",
        "",
        "## Evaluation (held-out)",
        "",
        f"Protocol: {metrics.get('protocol', '?')}.",
        "",
        "| metric | value |",
        "|---|---|",
        *(f"| {k} | {_fmt(v)} |" for k, v in test.items() if not isinstance(v, dict | list)),
    ]
    baseline = metrics.get("baseline") or metrics.get("peers") or {}
    if baseline:
        lines += ["", "Baselines on the same split(s):", ""]
        for b, m in baseline.items():
            lines.append(
                f"- {b}: "
                + ", ".join(
                    f"{k} {_fmt(v)}" for k, v in m.items() if not isinstance(v, dict | list)
                )
            )
    slices = metrics.get("slices") or {}
    lines += ["", "## Slices (bias analysis)", ""]
    if not slices:
        lines.append("No user groups large enough to compare.")
    for attr, entry in slices.items():
        lines.append(
            f"- {attr}: disparity {entry.get('disparity')} over "
            f"{len(entry.get('groups', {}))} groups"
        )
    lines += [
        "",
        "## Limits",
        "",
        "- Users and items unseen in training get the cold-start path (popular items / the "
        "base rate); an item added after training is not scored until the next full retrain.",
        "- Offline metrics come from a temporal hold-out; online behaviour may differ.",
        "",
        "## Reproduce and roll back",
        "",
        f"- Code: {lineage.get('code_version', '?')}; seed {lineage.get('seed', '?')}",
        "- `tastebud models rollback " + name + "` returns production to the previous version.",
    ]
    return "\n".join(lines) + "\n"
