"""Probability calibrators of the predictors: isotonic regression (unrestricted, or over
equal-count groups of the sorted scores), Platt scaling, and the choice of how many isotonic
levels the data supports.

A calibrator is a plain ``(kind, a, b)`` triple of a name and two float arrays, so that it is
saved as arrays (no pickle): ``isotonic`` (breakpoints, values; linear between them), ``steps``
(edges between groups, one probability per group), ``platt`` (slope, intercept) or ``none``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression

__all__ = [
    "Calibrator",
    "apply_calibrator",
    "choose_levels",
    "fit_isotonic",
    "fit_platt",
]

Calibrator = tuple[str, NDArray[np.float64], NDArray[np.float64]]

_EPS = 1e-6


def _sigmoid(z: NDArray[np.float64]) -> NDArray[np.float64]:
    out: NDArray[np.float64] = 1.0 / (1.0 + np.exp(-z))
    return out


def fit_isotonic(z: NDArray[np.float64], y: NDArray[np.int64], levels: int) -> Calibrator:
    """Isotonic regression of ``y`` on the scores ``z``: unrestricted (``levels`` 0, linear
    between block ends) or over ``levels`` equal-count groups of the sorted scores (a step
    function: each group's rate, pooled with its neighbours where the rates are not
    increasing).

    >>> kind, edges, steps = fit_isotonic(np.arange(8.0), np.array([0, 0, 1, 0, 0, 1, 1, 1]), 4)
    >>> kind, edges.tolist(), steps.tolist()
    ('steps', [1.5, 3.5, 5.5], [0.0, 0.5, 0.5, 1.0])
    """
    if levels <= 0 or levels >= len(z):
        iso = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(z, y)
        return (
            "isotonic",
            np.asarray(iso.X_thresholds_, np.float64),
            np.asarray(iso.y_thresholds_, np.float64),
        )
    order = np.argsort(z, kind="stable")
    zs, ys = z[order], y[order].astype(np.float64)
    bounds = np.unique(np.linspace(0, len(zs), levels + 1).round().astype(np.int64))
    counts = np.diff(bounds)
    rates = np.add.reduceat(ys, bounds[:-1]) / counts
    steps = IsotonicRegression(y_min=0.0, y_max=1.0).fit_transform(
        np.arange(len(rates)), rates, sample_weight=counts
    )
    # A score goes to the group whose range holds it: edges halfway between neighbouring groups.
    edges = (zs[bounds[1:-1] - 1] + zs[bounds[1:-1]]) / 2
    return ("steps", edges.astype(np.float64), np.asarray(steps, np.float64))


def fit_platt(z: NDArray[np.float64], y: NDArray[np.int64]) -> Calibrator:
    """Platt scaling: a logistic regression on the log-odds (for small data)."""
    lr = LogisticRegression(C=1e6, max_iter=1000).fit(z[:, None], y)
    return ("platt", np.array([lr.coef_[0, 0]]), np.array([lr.intercept_[0]]))


def apply_calibrator(cal: Calibrator, z: NDArray[np.float64]) -> NDArray[np.float64]:
    """Calibrated probabilities of log-odds ``z``."""
    kind, a, b = cal
    raw = _sigmoid(z)
    if kind in ("isotonic", "steps"):
        stepped = np.interp(z, a, b) if kind == "isotonic" else b[np.searchsorted(a, z)]
        # Ties of the step function are broken by the raw score: ranking is never lost.
        out: NDArray[np.float64] = np.clip(stepped * (1 - _EPS) + _EPS * raw, 0.0, 1.0)
        return out
    if kind == "platt":
        return _sigmoid(a[0] * z + b[0])
    return raw


def choose_levels(
    z: NDArray[np.float64], y: NDArray[np.int64], splits: list[Any], candidates: tuple[int, ...]
) -> tuple[int, dict[str, float]]:
    """How many isotonic levels (0: unrestricted) the out-of-fold scores ``z`` support, by the
    one-standard-error rule on ``splits``: each candidate is fitted on the other folds and
    scored (Brier) on the fold; the fewest levels whose mean is within one standard error of
    the best candidate's win. Returns (levels, mean Brier score per candidate)."""
    options = [0, *sorted(set(candidates), reverse=True)]
    brier = np.zeros((len(splits), len(options)))
    for f, (train_idx, valid_idx) in enumerate(splits):
        for j, levels in enumerate(options):
            p = apply_calibrator(fit_isotonic(z[train_idx], y[train_idx], levels), z[valid_idx])
            brier[f, j] = float(np.mean((p - y[valid_idx]) ** 2))
    mean = brier.mean(axis=0)
    best = int(mean.argmin())
    se = float(brier[:, best].std(ddof=1) / np.sqrt(len(splits))) if len(splits) > 1 else 0.0
    within = [j for j in range(len(options)) if mean[j] <= mean[best] + se]
    scores = {
        ("unrestricted" if g == 0 else str(g)): round(float(m), 6)
        for g, m in zip(options, mean, strict=True)
    }
    return options[max(within)], scores
