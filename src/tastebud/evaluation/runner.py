"""Run a protocol for several models: tune on validation, refit on train, score test once,
slice by user group. Returns an :class:`Evaluation` (``to_json()``: the JSON document of
``tastebud evaluate``)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import polars as pl

from tastebud.evaluation.metrics import bootstrap_ci
from tastebud.evaluation.protocol import (
    PROTOCOLS,
    Scored,
    Split,
    make_split,
    score_model,
    split_frames,
)
from tastebud.evaluation.result import (
    DatasetSummary,
    Evaluation,
    ModelScores,
    SliceGroup,
    SliceScores,
    TuningSummary,
)
from tastebud.evaluation.tuning import Params, TuneResult, max_trials, tune
from tastebud.models import MODELS, FitOptions, HybridConfig, Recommender, model_class
from tastebud.models.signals import is_synthetic_time
from tastebud.monitoring.fairness import estimate_disparity

__all__ = [
    "Dataset",
    "EvalProgress",
    "MIN_SLICE_USERS",
    "REPORTED",
    "evaluate",
]

REPORTED = (
    "ndcg@10",
    "mrr@10",
    "precision@10",
    "recall@10",
    "recall@20",
    "map@10",
    "hit@10",
    "coverage@10",
    "novelty@10",
    "longtail@10",
)
"""Metrics reported per model (the first five are those DESIGN.md names)."""
_CI = ("ndcg@10", "mrr@10", "precision@10", "recall@20", "map@10", "hit@10")
_SLICE_METRICS = ("ndcg@10", "recall@20", "hit@10")
MIN_SLICE_USERS = 10
"""Groups with fewer test users are not reported (too noisy, and too identifying)."""


@dataclass
class Dataset:
    """What an evaluation runs on: one row per (user, item) with the time of the first
    interaction and its weight, and optional user attributes (``user_key`` + string columns)."""

    pairs: pl.DataFrame
    users: pl.DataFrame | None = None

    def summary(self) -> DatasetSummary:
        """Sizes, and whether timestamps order what users did (not all equal, not synthesised:
        :func:`~tastebud.models.signals.is_synthetic_time`)."""
        ts = self.pairs.get_column("ts_ms").to_numpy().astype(np.float64)
        users = self.pairs.get_column("user_key").cast(pl.Categorical).to_physical().to_numpy()
        varies = bool(len(ts) > 1 and ts.max() != ts.min())
        return DatasetSummary(
            interactions=self.pairs.height,
            users=self.pairs.get_column("user_key").n_unique(),
            items=self.pairs.get_column("item_id").n_unique(),
            has_time=varies and not is_synthetic_time(users, ts),
        )


@dataclass(frozen=True)
class EvalProgress:
    """Where :func:`evaluate` is, reported before and after every fit (for progress displays).

    Example: ``EvalProgress("als", 2, 3, "validation", 4, 31)`` is the fourth tuning trial of
    ALS done, the second of three models; then ``split="test"`` (``trial`` 0, then 1) is its
    refit on all of train, scored on test.
    """

    model: str
    """The model being evaluated."""
    position: int
    """Its 1-based position among the models of this evaluation."""
    models: int
    """How many models this evaluation runs."""
    split: Literal["validation", "test"]
    """``validation``: tuning trials, each a fit scored on the validation split; ``test``: the
    refit on train with the chosen parameters, scored on test once."""
    trial: int
    """Fits finished on this split for this model so far."""
    trials: int
    """Upper bound on the fits of this split (the coordinate search may stop early; 1 on
    test)."""


def _clean(x: float) -> float | None:
    return None if math.isnan(x) or math.isinf(x) else round(x, 6)


def _round_ci(ci: tuple[float, float]) -> tuple[float, float]:
    return round(ci[0], 6), round(ci[1], 6)


def _slices(
    dataset: Dataset, split_users: list[str], train_counts: np.ndarray, scored: dict[str, Scored]
) -> dict[str, dict[str, SliceScores]]:
    """Per user group (every attribute, plus training-activity terciles): each metric's mean,
    and the max/min disparity ratio of NDCG@10 across groups."""
    frame = pl.DataFrame({"user_key": split_users})
    q1, q2 = np.quantile(train_counts, [1 / 3, 2 / 3]) if len(train_counts) else (0, 0)
    activity = np.where(train_counts <= q1, "low", np.where(train_counts <= q2, "mid", "high"))
    frame = frame.with_columns(pl.Series("activity", activity))
    if dataset.users is not None and dataset.users.height:
        frame = frame.join(dataset.users, on="user_key", how="left")
    out: dict[str, dict[str, SliceScores]] = {}
    for attr in [c for c in frame.columns if c != "user_key"]:
        values = frame.get_column(attr).cast(pl.String).fill_null("(unknown)").to_numpy()
        groups = [g for g in sorted(set(values)) if (values == g).sum() >= MIN_SLICE_USERS]
        if len(groups) < 2:
            continue
        per_model: dict[str, SliceScores] = {}
        for name, s in scored.items():
            table = {
                g: SliceGroup(
                    int((values == g).sum()),
                    {m: round(float(s.per_user[m][values == g].mean()), 6) for m in _SLICE_METRICS},
                )
                for g in groups
            }
            nd = [t.metrics["ndcg@10"] for t in table.values()]
            disparity = max(nd) / min(nd) if min(nd) > 0 else None
            # The governance check judges groups large enough, with their sampling noise.
            noise = estimate_disparity({g: s.per_user["ndcg@10"][values == g] for g in groups})
            per_model[name] = SliceScores(
                table, None if disparity is None else round(disparity, 4), noise
            )
        out[attr] = per_model
    return out


def _tune(
    cls: type[Recommender[Any]],
    validation: Split,
    options: FitOptions,
    where: tuple[int, int],
    tell: Callable[[EvalProgress], None],
    parts: dict[str, TuneResult],
) -> TuneResult:
    """:func:`tune`, reporting each trial to ``tell``; ``where``: (position, models); ``parts``:
    the tunings done so far in this run (a blend reuses its parts')."""
    bound, done = max_trials(cls, reused=frozenset(parts)), 0

    def trial(_params: Params, _score: float) -> None:
        nonlocal done
        done += 1
        tell(EvalProgress(cls.name, *where, "validation", done, max(bound, done)))

    tell(EvalProgress(cls.name, *where, "validation", 0, bound))
    return tune(cls, validation, options=options, on_trial=trial, parts=parts)


def evaluate(
    dataset: Dataset,
    models: Sequence[str] | None = None,
    *,
    protocol: str = "temporal-user",
    seed: int = 0,
    tuning: bool = True,
    log: Callable[[str], None] | None = None,
    progress: Callable[[EvalProgress], None] | None = None,
) -> Evaluation:
    """Evaluate ``models`` (default: all registered) on ``dataset`` under ``protocol``.

    Each model is tuned on a validation split made the same way from train (never on test),
    refitted on all of train with the chosen parameters, and scored on test once. Blends run
    after the models they blend, whose tunings they reuse. The best model is the one with the
    best validation score, peers included.

    Args:
        log: Called with one line per model when it is done (its test and validation scores).
        progress: Called with an :class:`EvalProgress` before the first fit of each model and
            split and after every fit (tuning trial, test refit); ``None``: no reports.
    """
    say = log or (lambda _msg: None)
    tell = progress or (lambda _p: None)
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; known: {', '.join(PROTOCOLS)}")
    names = list(models) if models else list(MODELS)
    classes = [model_class(n) for n in names]
    train_f, test_f = split_frames(dataset.pairs, protocol, seed=seed)
    if test_f.height == 0 or train_f.height == 0:
        raise ValueError(
            f"not enough data for {protocol}: {dataset.pairs.height} interactions give "
            f"{train_f.height} train and {test_f.height} test rows"
        )
    split = make_split(train_f, test_f)
    val_split = make_split(*split_frames(train_f, protocol, seed=seed)) if tuning else None
    options = FitOptions(seed=seed)
    scores: dict[str, ModelScores] = {}
    tunings: dict[str, TuningSummary] = {}
    scored: dict[str, Scored] = {}
    done: dict[str, TuneResult] = {}
    # Blends after everything else: they reuse the tunings of their parts.
    order = sorted(classes, key=lambda c: issubclass(c.config_class, HybridConfig))
    for cls in order:
        position = classes.index(cls) + 1
        t0 = time.perf_counter()
        if val_split is not None and val_split.test_users.size:
            tuned = _tune(cls, val_split, options, (position, len(classes)), tell, done)
            done[cls.name] = tuned
            config, val_score, n_trials = tuned.config, tuned.score, len(tuned.trials)
        else:
            config, val_score, n_trials = cls.config_class(), None, 0
        tune_seconds = time.perf_counter() - t0
        tell(EvalProgress(cls.name, position, len(classes), "test", 0, 1))
        s = score_model(cls(config), split, ks=(10, 20), options=options)
        tell(EvalProgress(cls.name, position, len(classes), "test", 1, 1))
        scored[cls.name] = s
        entry = ModelScores(
            metrics={m: _clean(s.mean(m)) for m in REPORTED},
            ci95={m: _round_ci(bootstrap_ci(s.per_user[m], seed=seed)) for m in _CI},
            params=config.model_dump(mode="json"),
            fit_seconds=round(s.fit_seconds, 3),
            peer=cls.peer,
        )
        scores[cls.name] = entry
        tunings[cls.name] = TuningSummary(
            None if val_score is None else round(val_score, 6), n_trials, round(tune_seconds, 2)
        )
        say(
            f"{cls.name}: ndcg@10 {entry.metrics['ndcg@10']:.4f} (validation "
            f"{val_score if val_score is None else round(val_score, 4)}, {n_trials} trials, "
            f"fit {s.fit_seconds:.2f}s)"
        )
    scores = {c.name: scores[c.name] for c in classes}
    tunings = {c.name: tunings[c.name] for c in classes}
    scored = {c.name: scored[c.name] for c in classes}
    train_counts = np.diff(split.train.matrix().indptr)[split.test_users]
    peers = [n for n in scores if scores[n].peer]

    def ndcg(n: str) -> float:
        return scores[n].metrics["ndcg@10"] or 0.0

    def val(n: str) -> float:
        v = tunings[n].validation_ndcg10
        return -1.0 if v is None else float(v)

    # The best model is chosen on validation (never on test), among all, peers included (with
    # tuning off: Tastebud's own first); the best peer on test, which can only flatter the peer.
    candidates = (
        list(scores)
        if any(val(n) >= 0 for n in scores)
        else [n for n in scores if not scores[n].peer]
    )
    best_model = max(candidates, key=val) if candidates else None
    best_peer = max(peers, key=ndcg) if peers else None
    ratio = None
    if best_model is not None and best_peer is not None and ndcg(best_peer):
        ratio = round(ndcg(best_model) / ndcg(best_peer), 4)
    return Evaluation(
        protocol=protocol,
        seed=seed,
        dataset=dataset.summary(),
        test_users=len(split.test_users),
        models=scores,
        tuning=tunings,
        slices=_slices(dataset, split.test_user_keys, train_counts, scored),
        best_model=best_model,
        best_peer=best_peer,
        best_ndcg10_over_best_peer=ratio,
    )
