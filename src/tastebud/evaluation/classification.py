"""Classification metrics for calibrated probabilities: ROC-AUC, PR-AUC, Brier score, expected
calibration error and the reliability diagram's data."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

__all__ = [
    "ECE_BINS",
    "PredictorDetails",
    "classification_metrics",
    "expected_calibration_error",
    "reliability",
]

ECE_BINS = 15
"""Equal-width probability bins of the expected calibration error (DESIGN.md)."""


@dataclass(frozen=True)
class PredictorDetails:
    """What the predictor protocol found besides the means: the report's material."""

    splits: dict[str, list[dict[str, float]]]
    """Per model, its :func:`classification_metrics` on each split's held-out 20 %."""
    chosen: list[str]
    """Tastebud's chosen candidate, per split."""
    calibration: list[str]
    """Tastebud's calibrator, per split."""
    reliability: dict[str, list[dict[str, float]]]
    """Per model, the :func:`reliability` bins of its pooled held-out predictions."""
    importance: dict[str, float]
    """Tastebud's global feature importance (mean over splits), largest first."""
    tastebud_ece_floor: float
    """The ECE perfectly calibrated probabilities like Tastebud's would measure on test sets
    this size."""
    rows: int
    positives: int


def reliability(
    y: NDArray[np.integer[Any]], p: NDArray[np.floating[Any]], bins: int = ECE_BINS
) -> list[dict[str, float]]:
    """Per equal-width bin of predicted probability: count, mean prediction, observed rate.
    The last bin includes 1.0; empty bins are left out.

    >>> [b["count"] for b in reliability(np.array([0, 1, 1]), np.array([0.1, 0.9, 1.0]), 2)]
    [1, 2]
    """
    y = np.asarray(y, dtype=np.float64)
    p = np.asarray(p, dtype=np.float64)
    idx = np.minimum((p * bins).astype(np.int64), bins - 1)
    out = []
    for b in range(bins):
        m = idx == b
        if m.any():
            out.append(
                {
                    "bin": b,
                    "low": b / bins,
                    "high": (b + 1) / bins,
                    "count": int(m.sum()),
                    "mean_predicted": float(p[m].mean()),
                    "observed_rate": float(y[m].mean()),
                }
            )
    return out


def expected_calibration_error(
    y: NDArray[np.integer[Any]], p: NDArray[np.floating[Any]], bins: int = ECE_BINS
) -> float:
    """Σ over bins of (share of predictions in the bin) x |observed rate - mean prediction|.

    >>> round(expected_calibration_error(np.array([0, 1, 1, 0]), np.array([0.2, 0.8, 0.9, 0.1])), 3)
    0.15
    """
    n = len(p)
    return float(
        sum(
            b["count"] / n * abs(b["observed_rate"] - b["mean_predicted"])
            for b in reliability(y, p, bins)
        )
    )


def classification_metrics(
    y: NDArray[np.integer[Any]], p: NDArray[np.floating[Any]]
) -> dict[str, float]:
    """``roc_auc``, ``pr_auc`` (average precision), ``brier`` and ``ece`` of probabilities."""
    return {
        "roc_auc": float(roc_auc_score(y, p)),
        "pr_auc": float(average_precision_score(y, p)),
        "brier": float(brier_score_loss(y, np.clip(p, 0.0, 1.0))),
        "ece": expected_calibration_error(y, p),
    }
