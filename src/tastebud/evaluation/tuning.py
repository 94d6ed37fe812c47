"""Hyper-parameter tuning on the validation split only (coordinate search over each model's
``search_space``)."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tastebud.evaluation.protocol import Split, score_model
from tastebud.models import FitOptions, ModelConfig, Recommender

__all__ = [
    "ParamValue",
    "Params",
    "TuneResult",
    "checked_space",
    "coordinate_search",
    "max_trials",
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
) -> TuneResult:
    """Coordinate search: from the defaults, each parameter in turn takes its best value on the
    validation split (others fixed); ``passes`` rounds, stopping early when nothing changes.
    Ties keep the earlier (simpler, default-first) value.

    Raises:
        pydantic.ValidationError: a value of the search space is outside its field's bounds
            (before any trial runs).
    """
    space = checked_space(model_class.config_class)
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

    current, best = coordinate_search(space, score, passes=passes)
    return TuneResult(model_class.config_class(**current), best, trials)


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


def max_trials(model_class: type[Recommender[Any]], *, passes: int = 2) -> int:
    """An upper bound on the trials :func:`tune` runs for ``model_class`` (the defaults, then
    every value of every parameter in each pass; repeats are cached and the search may stop
    early, so the real count is usually lower): the denominator of a progress display.

    >>> from tastebud.models import model_class
    >>> max_trials(model_class("popularity"))
    1
    """
    space = model_class.config_class.search_space()
    return 1 + (passes * sum(len(values) for values in space.values()) if space else 0)


def coordinate_search(
    space: Mapping[str, Sequence[ParamValue]],
    score: Callable[[Params], float],
    *,
    passes: int = 2,
) -> tuple[Params, float]:
    """The search ``tune`` runs, for any scoring function: from ``{}`` (the defaults), each
    parameter in turn takes its best value (others fixed); ``passes`` rounds, stopping early
    when nothing changes. Returns (best overrides, best score). ``score`` should cache.

    >>> coordinate_search({"a": [1, 2, 3], "b": [0, 5]}, lambda p: p.get("a", 0) - p.get("b", 0))
    ({'a': 3}, 3)
    """
    current: Params = {}
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
