"""``tastebud train``: tune on a validation split of all the data, fit on all of it, save."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import JsonValue

from tastebud.errors import InvalidInput
from tastebud.evaluation import Dataset, make_split, split_frames, tune
from tastebud.evaluation.tuning import Params
from tastebud.models import FitOptions, model_class
from tastebud.registry.recommender import save_model

__all__ = ["TrainResult", "train_recommender"]


@dataclass
class TrainResult:
    """What ``train_recommender`` fitted and where it saved it."""

    model: str
    path: Path
    params: dict[str, JsonValue]
    """The config the model was fitted with, as JSON."""
    users: int
    items: int
    interactions: int
    validation_ndcg10: float | None
    seconds: float
    trials: list[tuple[Params, float]] = field(default_factory=list)


def train_recommender(
    dataset: Dataset,
    directory: Path,
    *,
    model: str = "tastebud_hybrid",
    tuning: bool = True,
    seed: int = 0,
) -> TrainResult:
    """Tune ``model`` on the temporal per-user validation split of ``dataset`` (when
    ``tuning``), fit it on all of ``dataset`` and save it to ``directory``.

    Raises:
        InvalidInput: unknown model name, or no interactions to train on.
    """
    try:
        cls = model_class(model)
    except KeyError as exc:
        raise InvalidInput(str(exc.args[0])) from None
    if dataset.pairs.height == 0:
        raise InvalidInput("no interactions to train on: import or ingest events first")
    t0 = time.perf_counter()
    config, score, trials = cls.config_class(), None, []
    options = FitOptions(seed=seed)
    if tuning:
        validation = make_split(*split_frames(dataset.pairs, "temporal-user", seed=seed))
        if validation.test_users.size:
            tuned = tune(cls, validation, options=options)
            config, score, trials = tuned.config, tuned.score, tuned.trials
    everything = make_split(dataset.pairs, dataset.pairs.clear())
    fitted = cls(config).fit(everything.train, options)
    metrics = {
        "validation": {"ndcg@10": score},
        "trials": len(trials),
        "data": {
            "interactions": dataset.pairs.height,
            "max_ts_ms": dataset.pairs.get_column("ts_ms").max(),
        },
    }
    save_model(directory, fitted, everything.users, everything.items, metrics)
    return TrainResult(
        model=cls.name,
        path=directory,
        params=config.model_dump(mode="json"),
        users=len(everything.users),
        items=len(everything.items),
        interactions=dataset.pairs.height,
        validation_ndcg10=score,
        seconds=time.perf_counter() - t0,
        trials=trials,
    )
