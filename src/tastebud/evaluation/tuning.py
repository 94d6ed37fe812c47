"""Hyper-parameter tuning on the validation split only (coordinate search over each model's
``search_space``).

What the data cannot reward is not searched: on data without real time a model's time settings
are held at their time-blind values (``ModelConfig.time_blind``), and when every interaction
weighs the same the weightings that only rescale it (``log``, ``raw``) are left out, and with
a negative weight among them only ``binary`` is tried. A blend
(``tastebud_hybrid``) is tuned part by part, each exactly as it would be alone (or taken from a
tuning already done in the same run), then its weights on the parts' validation scores, from
the best part alone: it never scores below that part on validation.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tastebud.evaluation.blend import BlendPool, weights_of
from tastebud.evaluation.protocol import Split, score_model
from tastebud.models import FitOptions, HybridConfig, ModelConfig, Recommender, TrainingData

__all__ = [
    "ParamValue",
    "Params",
    "TuneResult",
    "checked_space",
    "coordinate_search",
    "max_trials",
    "search_for",
    "tune",
]

TUNE_METRIC = "ndcg@10"

ParamValue = int | float | str | bool | None
"""One hyper-parameter value a search space offers."""

Params = dict[str, ParamValue]
"""Hyper-parameter overrides of a model config (``{}``: the defaults), as a trial sets them."""


@dataclass
class TuneResult:
    """The chosen config and every trial's validation score."""

    config: ModelConfig
    score: float
    trials: list[tuple[Params, float]] = field(default_factory=list)


def tune(
    model_class: type[Recommender[Any]],
    validation: Split,
    *,
    options: FitOptions | None = None,
    passes: int = 2,
    on_trial: Callable[[Params, float], None] | None = None,
    parts: Mapping[str, TuneResult] | None = None,
) -> TuneResult:
    """Coordinate search: from the defaults, each parameter in turn takes its best value on the
    validation split (others fixed); ``passes`` rounds, stopping early when nothing changes.
    Ties keep the earlier (simpler, default-first) value. A blend is tuned by
    :func:`_tune_blend`; ``parts`` (by model name) are tunings of its parts already done on
    the same split, reused instead of repeated.

    Raises:
        pydantic.ValidationError: a value of the search space is outside its field's bounds
            (before any trial runs).
    """
    if issubclass(model_class.config_class, HybridConfig):
        return _tune_blend(model_class, validation, options, passes, on_trial, parts or {})
    checked_space(model_class.config_class)  # a wrong space fails before the data is read
    start, space = search_for(model_class.config_class, validation.train)
    cache: dict[str, float] = {}
    trials: list[tuple[Params, float]] = []

    def score(params: Params) -> float:
        cfg = model_class.config_class(**params)
        key = json.dumps(cfg.model_dump(mode="json"), sort_keys=True)
        if key not in cache:
            result = score_model(model_class(cfg), validation, ks=(10,), options=options)
            cache[key] = result.mean(TUNE_METRIC)
            trials.append((dict(params), cache[key]))
            if on_trial is not None:
                on_trial(dict(params), cache[key])
        return cache[key]

    current, best = coordinate_search(space, score, passes=passes, start=start)
    return TuneResult(model_class.config_class(**current), best, trials)


def search_for(
    config_class: type[ModelConfig], data: TrainingData
) -> tuple[Params, dict[str, list[Any]]]:
    """(where the search starts, what it searches) for ``config_class`` on ``data``: the
    checked search space without what the data cannot reward (module docstring).

    >>> from tastebud.models import ItemKNNConfig
    >>> flat = TrainingData.from_arrays(2, 2, [0, 1], [0, 1])
    >>> start, space = search_for(ItemKNNConfig, flat)
    >>> start, space["weighting"]
    ({'half_life': None}, ['binary', 'bm25'])
    """
    space = checked_space(config_class)
    start: Params = {}
    if not data.has_time():
        start = dict(config_class.time_blind())
        space = {k: v for k, v in space.items() if k not in start}
    if len(data) and "weighting" in space:
        if float(data.weight.min()) < 0:  # (a negative weight has no count to transform)
            space["weighting"] = ["binary"]
        elif float(np.ptp(data.weight)) == 0.0:
            space["weighting"] = [v for v in space["weighting"] if v not in ("log", "raw")]
    return start, space


def _tune_blend(
    model_class: type[Recommender[Any]],
    validation: Split,
    options: FitOptions | None,
    passes: int,
    on_trial: Callable[[Params, float], None] | None,
    done: Mapping[str, TuneResult],
) -> TuneResult:
    """Tune each part alone (or reuse ``done``), then the weights on a :class:`BlendPool` of the
    tuned parts fitted on the validation split's train, starting from the best part alone."""
    config_class = model_class.config_class
    assert issubclass(config_class, HybridConfig)
    keys = list(config_class.PARTS)
    trials: list[tuple[Params, float]] = []
    tuned: dict[str, TuneResult] = {}
    for key, cls in config_class.PARTS.items():
        if cls.name in done:
            tuned[key] = done[cls.name]
            continue

        def part_trial(params: Params, value: float, key: str = key) -> None:
            named: Params = {f"{key}.{k}": v for k, v in params.items()}
            trials.append((named, value))
            if on_trial is not None:
                on_trial(named, value)

        tuned[key] = tune(cls, validation, options=options, passes=passes, on_trial=part_trial)
    alone = {key: tuned[key].score for key in keys}
    first = max(keys, key=lambda k: alone[k])
    fitted = [config_class.PARTS[k](tuned[k].config).fit(validation.train, options) for k in keys]
    pool = BlendPool.build(fitted, validation)
    cache: dict[str, float] = {}

    def score(params: Params) -> float:
        weights = weights_of(keys, params)
        key = json.dumps([round(w, 6) for w in weights])
        if key not in cache:
            on = [k for k, w in zip(keys, weights, strict=True) if w > 0]
            # One part on: exactly that part (the blend then uses its raw scores).
            value = alone[on[0]] if len(on) == 1 else pool.score(weights) if on else -1.0
            cache[key] = value
            trials.append((dict(params), value))
            if on_trial is not None:
                on_trial(dict(params), value)
        return cache[key]

    space = {f"w_{k}": list(config_class.WEIGHTS) for k in keys}
    start: Params = {f"w_{k}": 1.0 if k == first else 0.0 for k in keys}
    chosen, best = coordinate_search(space, score, passes=passes, start=start)
    weights = weights_of(keys, chosen)
    if sum(w > 0 for w in weights) > 1:
        best = pool.exact(weights)  # over the whole catalogue, as the fitted blend ranks
        if best < alone[first]:
            chosen, best = start, alone[first]
    parts = {k: tuned[k].config for k in keys}
    config = config_class.blend(parts, dict(zip(keys, weights_of(keys, chosen), strict=True)))
    return TuneResult(config, best, trials)


def checked_space(config_class: type[ModelConfig]) -> dict[str, list[Any]]:
    """``config_class.search_space()``, each value checked against its field's bounds first, so
    that a wrong space fails at once instead of after hours of trials.

    >>> from tastebud.models import ItemKNNConfig
    >>> checked_space(ItemKNNConfig)["neighbors"]
    [20, 50, 100, 200, 400]

    Raises:
        pydantic.ValidationError: a value is out of bounds, or names no field (the message
            names the field).
    """
    space = config_class.search_space()
    for name, values in space.items():
        for value in values:
            config_class(**{name: value})
    return space


def max_trials(
    model_class: type[Recommender[Any]], *, passes: int = 2, reused: frozenset[str] = frozenset()
) -> int:
    """An upper bound on the trials :func:`tune` runs for ``model_class`` (the defaults, then
    every value of every parameter in each pass; repeats are cached and the search may stop
    early, so the real count is usually lower): the denominator of a progress display. For a
    blend: its parts' (except those named in ``reused``) and its weights'.

    >>> from tastebud.models import model_class
    >>> max_trials(model_class("popularity"))  # the defaults, then 3 weightings in 2 passes
    7
    """
    config_class = model_class.config_class
    if issubclass(config_class, HybridConfig):
        parts = sum(
            max_trials(cls, passes=passes)
            for cls in config_class.PARTS.values()
            if cls.name not in reused
        )
        return parts + 1 + passes * len(config_class.PARTS) * len(config_class.WEIGHTS)
    space = config_class.search_space()
    return 1 + (passes * sum(len(values) for values in space.values()) if space else 0)


def coordinate_search(
    space: Mapping[str, Sequence[ParamValue]],
    score: Callable[[Params], float],
    *,
    passes: int = 2,
    start: Params | None = None,
) -> tuple[Params, float]:
    """The search ``tune`` runs, for any scoring function: from ``start`` (default ``{}``, the
    defaults), each parameter in turn takes its best value (others fixed); ``passes`` rounds,
    stopping early when nothing changes. Returns (best overrides, best score). ``score``
    should cache.

    >>> coordinate_search({"a": [1, 2, 3], "b": [0, 5]}, lambda p: p.get("a", 0) - p.get("b", 0))
    ({'a': 3}, 3)
    """
    current: Params = dict(start or {})
    best = score(current)
    for _ in range(passes if space else 0):
        changed = False
        for name, values in space.items():
            for value in values:
                candidate: Params = {**current, name: value}
                s = score(candidate)
                if s > best + 1e-12:
                    best, current, changed = s, candidate, True
        if not changed:
            break
    return current, best
