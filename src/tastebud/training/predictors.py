"""Behaviour predictors: the DESIGN.md protocol against the peers, training, and artifacts.

Protocol: five stratified 80/20 splits (seeds 0 to 4); every model is tuned and calibrated on
its split's 80 % only (when rows share an id, as a user at several as-of times does, each id
stays on one side: stratified group folds, the first of five as the 20 %); the means over the
splits of ROC-AUC, PR-AUC, Brier score and ECE (15 equal-width bins) on the 20 % are reported.
Peers: ``sk_logreg`` (scikit-learn logistic regression, numeric columns median-imputed and
scaled, categories one-hot) and ``sk_gbm_seed`` (scikit-learn's GradientBoostingClassifier with
the seed document's settings: 100 trees, learning rate 0.1, depth 5; median-imputed, categories
as codes).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedGroupKFold, StratifiedShuffleSplit
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from tastebud.evaluation.classification import (
    PredictorDetails,
    classification_metrics,
    expected_calibration_error,
    reliability,
)
from tastebud.models.predictor import Predictor
from tastebud.models.predictor_config import PredictorConfig
from tastebud.training.tabular import FeatureTable

__all__ = [
    "PEERS",
    "evaluate_predictors",
]

Fitter = Callable[[FeatureTable, NDArray[np.int64], NDArray[np.int64]], NDArray[np.float64]]


def _sk_logreg(t: FeatureTable, train: NDArray[np.int64], test: NDArray[np.int64]) -> Any:
    numeric = [j for j in range(len(t.names)) if j not in t.categorical]
    pre = ColumnTransformer(
        [
            ("num", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), numeric),
            (
                "cat",
                make_pipeline(
                    SimpleImputer(strategy="most_frequent"), OneHotEncoder(handle_unknown="ignore")
                ),
                t.categorical,
            ),
        ]
    )
    model = make_pipeline(pre, LogisticRegression(max_iter=5000))
    model.fit(t.x[train], t.y[train])
    return model.predict_proba(t.x[test])[:, 1]


def _sk_gbm_seed(t: FeatureTable, train: NDArray[np.int64], test: NDArray[np.int64]) -> Any:
    model = make_pipeline(
        SimpleImputer(strategy="median", keep_empty_features=True),
        GradientBoostingClassifier(
            n_estimators=100, learning_rate=0.1, max_depth=5, random_state=0
        ),
    )
    model.fit(t.x[train], t.y[train])
    return model.predict_proba(t.x[test])[:, 1]


PEERS: dict[str, Fitter] = {"sk_logreg": _sk_logreg, "sk_gbm_seed": _sk_gbm_seed}
"""The peers of the protocol, by their report names."""


def evaluate_predictors(
    table: FeatureTable,
    *,
    splits: int = 5,
    first_seed: int = 0,
    config: PredictorConfig | None = None,
    log: Callable[[str], None] | None = None,
) -> tuple[dict[str, dict[str, float]], PredictorDetails]:
    """Run the protocol (split seeds ``first_seed`` to ``first_seed + splits - 1``; the protocol's
    are 0-4). Returns (the flat JSON of means per model, details for the report:
    per-split metrics, the chosen candidates, reliability bins of the pooled test predictions
    and Tastebud's global feature importance)."""
    say = log or (lambda _m: None)
    per_model: dict[str, list[dict[str, float]]] = {}
    pooled: dict[str, tuple[list[int], list[float]]] = {}
    chosen: list[str] = []
    calibration: list[str] = []
    floors: list[float] = []
    importance: dict[str, float] = {}
    groups = None if table.ids is None else np.asarray(table.ids)
    grouped = groups is not None and len(np.unique(groups)) < len(groups)
    for seed in range(first_seed, first_seed + splits):
        if grouped:
            # Rows share ids (a user at several as-of times): whole ids go to one side, or the
            # test rows would be users the model has already seen.
            sgk = StratifiedGroupKFold(n_splits=5, shuffle=True, random_state=seed)
            train, test = next(sgk.split(table.x, table.y, groups))
        else:
            sss = StratifiedShuffleSplit(n_splits=1, test_size=0.2, random_state=seed)
            train, test = next(sss.split(table.x, table.y))
        cfg = (config or PredictorConfig()).model_copy(update={"seed": seed})
        model = Predictor(cfg).fit(
            table.x[train],
            table.y[train],
            table.names,
            table.categorical,
            groups=None if groups is None else groups[train],
        )
        probs = {"tastebud": model.predict_proba(table.x[test])}
        chosen.append(model.chosen)
        calibration.append(model.calibration)
        for name, value in model.importance().items():
            importance[name] = importance.get(name, 0.0) + value / splits
        for name, fitter in PEERS.items():
            probs[name] = np.asarray(fitter(table, train, test), dtype=np.float64)
        # What ECE would read if these very probabilities were perfectly calibrated: labels
        # drawn from them (200 draws). ECE on a finite test set never reaches 0.
        rng = np.random.default_rng(seed)
        p_ours = probs["tastebud"]
        floors.append(
            float(
                np.mean(
                    [
                        expected_calibration_error(
                            (rng.random(len(p_ours)) < p_ours).astype(np.int64), p_ours
                        )
                        for _ in range(200)
                    ]
                )
            )
        )
        for name, p in probs.items():
            m = classification_metrics(table.y[test], p)
            per_model.setdefault(name, []).append(m)
            ys, ps = pooled.setdefault(name, ([], []))
            ys.extend(table.y[test].tolist())
            ps.extend(p.tolist())
        say(
            f"split {seed}: "
            + ", ".join(
                f"{n} auc {v[-1]['roc_auc']:.4f} ece {v[-1]['ece']:.4f}"
                for n, v in per_model.items()
            )
            + f" (tastebud chose {model.chosen}, calibrated by {model.calibration})"
        )
    means = {
        name: {
            k: round(float(np.mean([m[k] for m in ms])), 6)
            for k in ("roc_auc", "pr_auc", "brier", "ece")
        }
        for name, ms in per_model.items()
    }
    details = PredictorDetails(
        splits=per_model,
        chosen=chosen,
        calibration=calibration,
        reliability={n: reliability(np.array(ys), np.array(ps)) for n, (ys, ps) in pooled.items()},
        importance=dict(sorted(importance.items(), key=lambda kv: -kv[1])),
        tastebud_ece_floor=round(float(np.mean(floors)), 6),
        rows=len(table.y),
        positives=int(table.y.sum()),
    )
    return means, details
