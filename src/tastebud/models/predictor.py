"""Calibrated binary predictors (churn, conversion, any label of a feature table).

The model family and its regularisation are chosen on out-of-fold predictions *inside* the
training data (stratified K folds): LightGBM ensembles at two regularisation strengths, each
the average of one model with categories as ordered codes and one with LightGBM's native
categorical splits (every booster early-stopped on its held-out fold), and L2 logistic
regression on scaled, signed-log numeric features plus one-hot categories at several strengths.
The candidate with the best out-of-fold ROC-AUC wins; a 50/50 logit blend of the best boosted
and best linear candidates competes too, if it beats both by more than 0.001. The winner's
out-of-fold predictions then fit the calibrator (Platt scaling on small data): isotonic
regression, either unrestricted or over equal-count groups of the sorted scores (200, 100, 50
or 20 probability levels), the number of levels chosen on the same folds by the one-standard-
error rule: the fewest levels whose cross-validated Brier score is within one standard error of
the best. Fewer levels, each backed by more rows, are as accurate where the data cannot tell
finer steps apart (a plain isotonic fit chases noise in its small blocks), and the rule keeps
the fine ones where it can (rare positives concentrated at the top). A tiny multiple of the raw
score breaks the calibrator's ties, so calibration never costs ranking.

Persistence is plain text and arrays: each booster's LightGBM text model, the linear model's
coefficients and the calibrator's breakpoints (``to_state`` / ``from_state``), no pickle.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import lightgbm as lgb
import numpy as np
from numpy.typing import NDArray
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

from tastebud.models._calibration import (
    Calibrator,
    apply_calibrator,
    choose_levels,
    fit_isotonic,
    fit_platt,
)
from tastebud.models.predictor_config import PredictorConfig, PredictorMeta

__all__ = ["Explanation", "Predictor"]


_LgbParams = dict[str, int | float | str | bool]
"""LightGBM training parameters (its own names: ``num_leaves``, ``lambda_l2``...)."""


@dataclass
class Explanation:
    """One prediction's top contributing features (in log-odds, before calibration)."""

    feature: str
    contribution: float
    direction: Literal["increases", "decreases"]


@dataclass
class _Linear:
    """Logistic regression over the design matrix (see ``_design``)."""

    coef: NDArray[np.float64]
    intercept: float
    mean: NDArray[np.float64]
    scale: NDArray[np.float64]
    signed_log: bool


@dataclass
class _Candidate:
    name: str
    oof: NDArray[np.float64]
    """Out-of-fold log-odds."""
    boosters: list[lgb.Booster] = field(default_factory=list)
    linear: _Linear | None = None
    parts: tuple[str, ...] = ()


def _raw(
    booster: lgb.Booster, x: NDArray[np.float64], *, contrib: bool = False
) -> NDArray[np.float64]:
    """A booster's log-odds (or SHAP contributions) as a float array."""
    if contrib:
        return np.asarray(booster.predict(x, pred_contrib=True), dtype=np.float64)
    return np.asarray(booster.predict(x, raw_score=True), dtype=np.float64)


class Predictor:
    """A calibrated binary classifier over a numeric matrix with some categorical columns.

    ``X`` holds floats, ``NaN`` for missing values; categorical columns hold integer codes
    (``NaN`` for missing). ``fit`` chooses the model (module docstring); ``predict_proba``
    returns calibrated probabilities; ``explain`` the top contributing features.

    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(600, 3))
    >>> y = (x[:, 0] + 0.3 * rng.normal(size=600) > 0.5).astype(int)
    >>> p = Predictor(PredictorConfig(leaves=(7,), logistic_c=(1.0,))).fit(x, y, ["a", "b", "c"])
    >>> bool(p.predict_proba(x[:5]).max() <= 1.0), p.explain(x[:1])[0][0].feature
    (True, 'a')
    """

    def __init__(self, config: PredictorConfig | None = None) -> None:
        self.config = config or PredictorConfig()
        self.names: list[str] = []
        self.categorical: list[int] = []
        self.chosen = ""
        self.selection: dict[str, float] = {}
        self._boosters: list[lgb.Booster] = []
        self._booster_kinds: list[str] = []
        self._linear: _Linear | None = None
        self._blend = 0.0
        self._calibrator: Calibrator = ("none", np.zeros(0), np.zeros(0))
        self.calibration_levels_ = 0
        """Levels of the chosen isotonic calibrator (0: unrestricted or not isotonic)."""
        self.calibration_selection: dict[str, float] = {}
        """Cross-validated Brier score per calibrator candidate (``auto`` only)."""
        self._importance: NDArray[np.float64] = np.zeros(0)
        self._cat_width: dict[int, int] = {}
        self._has_missing: dict[int, bool] = {}

    # -- fitting ----------------------------------------------------------------------------------
    def fit(
        self,
        x: NDArray[np.float64],
        y: NDArray[np.integer[Any]],
        names: list[str],
        categorical: list[int] | None = None,
        groups: NDArray[Any] | None = None,
    ) -> Predictor:
        """Choose, fit and calibrate on ``x`` (rows) and binary labels ``y``.

        ``groups`` (e.g. the user of each row, when a training set stacks several as-of times
        per user) keeps each group's rows in one inner fold, so that selection, early stopping
        and calibration never score a model on rows of users it was trained on.

        Raises:
            ValueError: fewer than two examples of either class, or shapes that disagree.
        """
        x = np.asarray(x, dtype=np.float64)
        labels: NDArray[np.int64] = np.asarray(y).astype(np.int64)
        y = labels
        if x.ndim != 2 or len(x) != len(y) or x.shape[1] != len(names):
            raise ValueError("x must be rows x len(names), with one label per row")
        n_pos = int(y.sum())
        if min(n_pos, len(y) - n_pos) < 2:
            raise ValueError(f"need both classes: {n_pos} positive and {len(y) - n_pos} negative")
        self.names, self.categorical = list(names), sorted(categorical or [])
        self._cat_width = {j: int(np.nanmax(x[:, j], initial=-1)) + 1 for j in self.categorical}
        self._has_missing = {j: bool(np.isnan(x[:, j]).any()) for j in range(x.shape[1])}
        folds = max(2, min(self.config.folds, n_pos, len(y) - n_pos))
        if groups is not None and len(np.unique(groups)) < len(groups):
            g = np.asarray(groups)
            folds = max(2, min(folds, len(np.unique(g))))
            splits = list(
                StratifiedGroupKFold(folds, shuffle=True, random_state=self.config.seed).split(
                    x, y, g
                )
            )
        else:
            splits = list(
                StratifiedKFold(folds, shuffle=True, random_state=self.config.seed).split(x, y)
            )
        candidates: list[_Candidate] = []
        if "lightgbm" in self.config.families:
            candidates += [self._boosted(x, y, splits, leaves) for leaves in self.config.leaves]
        if "logistic" in self.config.families:
            candidates += [
                self._logistic(x, y, splits, c, log)
                for c in self.config.logistic_c
                for log in (False, True)
            ]
        scores = {c.name: float(roc_auc_score(y, c.oof)) for c in candidates}
        boosted = [c for c in candidates if c.boosters]
        linear = [c for c in candidates if c.linear is not None]
        if boosted and linear:
            b = max(boosted, key=lambda c: scores[c.name])
            lin = max(linear, key=lambda c: scores[c.name])
            blend = _Candidate(
                f"blend({b.name},{lin.name})",
                (b.oof + lin.oof) / 2,
                b.boosters,
                lin.linear,
                (b.name, lin.name),
            )
            blend_score = float(roc_auc_score(y, blend.oof))
            # The blend is more complex than its parts: it must earn its place.
            if blend_score > max(scores[b.name], scores[lin.name]) + 0.001:
                candidates.append(blend)
            scores[blend.name] = blend_score
        best = max(candidates, key=lambda c: (scores[c.name], -len(c.name)))
        self.selection = {k: round(v, 6) for k, v in scores.items()}
        self.chosen = best.name
        self._boosters = best.boosters
        self._booster_kinds = ["native" if i % 2 else "codes" for i in range(len(best.boosters))]
        self._linear = best.linear
        self._blend = 0.5 if (best.boosters and best.linear is not None) else 0.0
        self.oof_logit_ = best.oof
        self._fit_calibrator(best.oof, y, splits)
        contrib = np.abs(self._contributions(x))
        self._importance = contrib.mean(axis=0)
        return self

    def _lgb_params(self, leaves: int, y: NDArray[np.int64]) -> _LgbParams:
        params: _LgbParams = {
            "objective": "binary",
            "learning_rate": self.config.learning_rate,
            "num_leaves": leaves,
            "min_data_in_leaf": 80 if leaves <= 7 else 20,
            "lambda_l2": 10.0 if leaves <= 7 else 1.0,
            "feature_fraction": 0.7,
            "seed": self.config.seed,
            "deterministic": True,
            # OpenMP threads cost more than they bring on small tables (and spin against
            # other work on a busy machine): one thread below 50,000 rows, all cores above.
            "num_threads": 1 if len(y) < 50_000 else 0,
            "verbosity": -1,
            "max_cat_to_onehot": 64,
            "min_data_per_group": 50,
        }
        if self.config.balance_classes:
            params["scale_pos_weight"] = float((len(y) - y.sum()) / max(y.sum(), 1))
        return params

    def _boosted(
        self, x: NDArray[np.float64], y: NDArray[np.int64], splits: list[Any], leaves: int
    ) -> _Candidate:
        """Per fold, one booster with categories as ordered codes and one with native
        categorical splits, both early-stopped on the fold; averaged in log-odds."""
        params = self._lgb_params(leaves, y)
        oof = np.zeros(len(y))
        boosters: list[lgb.Booster] = []
        for train_idx, valid_idx in splits:
            parts = []
            for native in (False, True):
                cats = self.categorical if native else []
                dtrain = lgb.Dataset(
                    x[train_idx], y[train_idx], categorical_feature=cats, free_raw_data=False
                )
                dvalid = lgb.Dataset(
                    x[valid_idx], y[valid_idx], categorical_feature=cats, reference=dtrain
                )
                booster = lgb.train(
                    params,
                    dtrain,
                    num_boost_round=self.config.max_trees,
                    valid_sets=[dvalid],
                    callbacks=[
                        lgb.early_stopping(self.config.early_stopping_rounds, verbose=False)
                    ],
                )
                booster.free_dataset()
                boosters.append(booster)
                parts.append(_raw(booster, x[valid_idx]))
            oof[valid_idx] = np.mean(parts, axis=0)
        return _Candidate(f"lightgbm(leaves={leaves})", oof, boosters=boosters)

    def _design(self, x: NDArray[np.float64], signed_log: bool) -> NDArray[np.float64]:
        """Numeric columns (signed log optional, missing as 0 plus an is-missing column) and
        one-hot categories (codes 0..max seen; missing as all zeros)."""
        cols = []
        for j in range(x.shape[1]):
            v = x[:, j]
            if j in self.categorical:
                codes = np.where(np.isnan(v), -1, v).astype(np.int64)
                width = self._cat_width[j]
                onehot = np.zeros((len(v), width))
                ok = (codes >= 0) & (codes < width)
                onehot[np.flatnonzero(ok), codes[ok]] = 1.0
                cols.append(onehot)
            else:
                missing = np.isnan(v)
                w = np.where(missing, 0.0, v)
                if signed_log:
                    w = np.sign(w) * np.log1p(np.abs(w))
                cols.append(w[:, None])
                if self._has_missing[j]:
                    cols.append(missing[:, None].astype(np.float64))
        return np.hstack(cols) if cols else np.zeros((len(x), 0))

    def _logistic(
        self,
        x: NDArray[np.float64],
        y: NDArray[np.int64],
        splits: list[Any],
        c: float,
        signed_log: bool,
    ) -> _Candidate:
        d = self._design(x, signed_log)
        oof = np.zeros(len(y))
        weight = "balanced" if self.config.balance_classes else None
        for train_idx, valid_idx in splits:
            mean, scale = d[train_idx].mean(axis=0), d[train_idx].std(axis=0)
            scale[scale == 0] = 1.0
            lr = LogisticRegression(C=c, max_iter=5000, class_weight=weight)
            lr.fit((d[train_idx] - mean) / scale, y[train_idx])
            oof[valid_idx] = lr.decision_function((d[valid_idx] - mean) / scale)
        mean, scale = d.mean(axis=0), d.std(axis=0)
        scale[scale == 0] = 1.0
        full = LogisticRegression(C=c, max_iter=5000, class_weight=weight)
        full.fit((d - mean) / scale, y)
        linear = _Linear(
            full.coef_[0].astype(np.float64), float(full.intercept_[0]), mean, scale, signed_log
        )
        tag = ",log" if signed_log else ""
        return _Candidate(f"logistic(C={c:g}{tag})", oof, linear=linear)

    def _fit_calibrator(
        self, oof_logit: NDArray[np.float64], y: NDArray[np.int64], splits: list[Any]
    ) -> None:
        kind, levels = self.config.calibration, 0
        if kind == "auto":
            kind = "isotonic" if len(y) >= 1000 and y.sum() >= 50 else "platt"
            if kind == "isotonic":
                levels, self.calibration_selection = choose_levels(
                    oof_logit, y, splits, self.config.calibration_levels
                )
        self.calibration_levels_ = levels
        if kind == "isotonic":
            self._calibrator = fit_isotonic(oof_logit, y, levels)
        elif kind == "platt":
            self._calibrator = fit_platt(oof_logit, y)
        else:
            self._calibrator = ("none", np.zeros(0), np.zeros(0))

    @property
    def calibration(self) -> str:
        """The calibrator in words: ``isotonic, 20 levels``, ``isotonic``, ``platt`` or
        ``none``."""
        kind = self._calibrator[0]
        if kind == "steps":
            return f"isotonic, {self.calibration_levels_} levels"
        return kind

    # -- prediction -------------------------------------------------------------------------------
    def decision_function(self, x: NDArray[np.float64]) -> NDArray[np.float64]:
        """Uncalibrated log-odds."""
        x = np.asarray(x, dtype=np.float64)
        parts = []
        if self._boosters:
            parts.append(np.mean([_raw(b, x) for b in self._boosters], axis=0))
        if self._linear is not None:
            lin = self._linear
            d = (self._design(x, lin.signed_log) - lin.mean) / lin.scale
            parts.append(d @ lin.coef + lin.intercept)
        if not parts:
            raise RuntimeError("predictor is not fitted")
        out: NDArray[np.float64] = np.mean(parts, axis=0)
        return out

    def predict_proba(self, x: NDArray[np.float64]) -> NDArray[np.float64]:
        """Calibrated probabilities of the positive class."""
        return apply_calibrator(self._calibrator, self.decision_function(x))

    def _contributions(self, x: NDArray[np.float64]) -> NDArray[np.float64]:
        """Per-row, per-feature contributions to the log-odds (SHAP values from LightGBM's
        ``pred_contrib``; coefficient x standardised value, summed per feature, for the linear
        model), averaged like the predictions."""
        x = np.asarray(x, dtype=np.float64)
        n, m = x.shape
        parts = []
        if self._boosters:
            shap = np.mean([_raw(b, x, contrib=True) for b in self._boosters], axis=0)
            parts.append(shap[:, :m])
        if self._linear is not None:
            lin = self._linear
            terms = (self._design(x, lin.signed_log) - lin.mean) / lin.scale * lin.coef
            per_feature = np.zeros((n, m))
            col = 0
            for j in range(m):
                width = (
                    self._cat_width[j] if j in self.categorical else (1 + int(self._has_missing[j]))
                )
                per_feature[:, j] = terms[:, col : col + width].sum(axis=1)
                col += width
            parts.append(per_feature)
        return np.mean(parts, axis=0) if parts else np.zeros((n, m))

    def explain(self, x: NDArray[np.float64], top: int = 3) -> list[list[Explanation]]:
        """The ``top`` features with the largest contributions for each row, with direction."""
        contrib = self._contributions(x)
        out = []
        for row in contrib:
            order = np.argsort(-np.abs(row), kind="stable")[:top]
            out.append(
                [
                    Explanation(
                        self.names[j],
                        round(float(row[j]), 6),
                        "increases" if row[j] > 0 else "decreases",
                    )
                    for j in order
                    if row[j] != 0
                ]
            )
        return out

    def importance(self) -> dict[str, float]:
        """Global importance: mean absolute contribution to the log-odds on the training data."""
        pairs = sorted(zip(self.names, self._importance, strict=True), key=lambda p: -p[1])
        return {n: round(float(v), 6) for n, v in pairs}

    # -- persistence ------------------------------------------------------------------------------
    def to_state(self) -> tuple[PredictorMeta, dict[str, NDArray[Any]], list[str]]:
        """(JSON-able metadata, named arrays, LightGBM text models): everything to rebuild."""
        meta: PredictorMeta = {
            "config": self.config.model_dump(mode="json"),
            "names": self.names,
            "categorical": self.categorical,
            "chosen": self.chosen,
            "selection": self.selection,
            "booster_kinds": self._booster_kinds,
            "blend": self._blend,
            "calibrator": self._calibrator[0],
            "calibration_levels": self.calibration_levels_,
            "calibration_selection": self.calibration_selection,
            "cat_width": {str(k): v for k, v in self._cat_width.items()},
            "has_missing": {str(k): v for k, v in self._has_missing.items()},
            "signed_log": None if self._linear is None else self._linear.signed_log,
            "intercept": None if self._linear is None else self._linear.intercept,
        }
        arrays: dict[str, NDArray[Any]] = {
            "calibrator_a": self._calibrator[1],
            "calibrator_b": self._calibrator[2],
            "importance": self._importance,
        }
        if self._linear is not None:
            arrays.update(coef=self._linear.coef, mean=self._linear.mean, scale=self._linear.scale)
        return meta, arrays, [b.model_to_string() for b in self._boosters]

    @classmethod
    def from_state(
        cls, meta: PredictorMeta, arrays: dict[str, NDArray[Any]], models: list[str]
    ) -> Predictor:
        """Inverse of ``to_state``."""
        p = cls(PredictorConfig(**meta["config"]))
        p.names, p.categorical = list(meta["names"]), [int(c) for c in meta["categorical"]]
        p.chosen, p.selection = meta["chosen"], dict(meta["selection"])
        p._booster_kinds, p._blend = list(meta["booster_kinds"]), float(meta["blend"])
        p._calibrator = (
            meta["calibrator"],
            np.asarray(arrays["calibrator_a"], np.float64),
            np.asarray(arrays["calibrator_b"], np.float64),
        )
        p.calibration_levels_ = int(meta.get("calibration_levels", 0))
        p.calibration_selection = dict(meta.get("calibration_selection", {}))
        p._importance = np.asarray(arrays["importance"], np.float64)
        p._cat_width = {int(k): int(v) for k, v in meta["cat_width"].items()}
        p._has_missing = {int(k): bool(v) for k, v in meta["has_missing"].items()}
        p._boosters = [lgb.Booster(model_str=s) for s in models]
        intercept = meta["intercept"]
        if meta["signed_log"] is not None and intercept is not None:  # both set, or neither
            p._linear = _Linear(
                np.asarray(arrays["coef"], np.float64),
                float(intercept),
                np.asarray(arrays["mean"], np.float64),
                np.asarray(arrays["scale"], np.float64),
                bool(meta["signed_log"]),
            )
        return p
