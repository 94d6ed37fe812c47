"""What a request serves when it is in experiments: the variant's model version and serving
settings (an *arm*), or the production default.

A user may be in one experiment per layer; the layers' experiments change different things
(checked when an experiment starts), so their choices merge: the model from the one that pins
it, each setting from the one that sets it. An arm whose model version cannot be served (not
loaded, failed to load) answers with production and is marked ``error`` (the experiment's
``error_rate`` guardrail counts it).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from tastebud.config import ServingConfig
from tastebud.experiments.assignment import Assignment
from tastebud.experiments.definitions import ServingParams
from tastebud.registry.recommender import LoadedModel
from tastebud.serving.bundle import MODEL_NAME, RecommenderBundle
from tastebud.serving.coldstart import ColdStartScores
from tastebud.serving.explore import Explorer
from tastebud.serving.hotswap import ModelServer, Served
from tastebud.serving.scorer import Scorer

__all__ = [
    "Arm",
    "Arms",
    "bundle_of",
]


@dataclass(frozen=True)
class Arm:
    """What one answer (or one side of an interleaved answer) is computed with."""

    served: Served
    bundle: RecommenderBundle
    scorer: Scorer
    explorer: Explorer
    label: tuple[object, ...]
    """Tells arms apart in the list cache's key (``()`` for the production default)."""
    error: bool = False
    """The variant's model could not be served: production answered instead."""
    variant: str | None = None
    """Interleaving: the variant of the interleaving experiment this side serves."""


def bundle_of(served: Served) -> RecommenderBundle:
    """A served recommendations model with its cold-start lists."""
    obj = served.obj
    return RecommenderBundle(obj) if isinstance(obj, LoadedModel) else obj


class Arms:
    """Arms of one serving process: scorers and explorers per distinct serving settings are
    built once and kept (their cold-start vectors shared).

    Args:
        models: The loaded model versions.
        config: The deployment's serving settings (what an unset variant setting keeps).
        cold: The process's cold-start score cache.
    """

    def __init__(self, models: ModelServer, config: ServingConfig, cold: ColdStartScores) -> None:
        self.models = models
        self.config = config
        self.cold = cold
        self._parts: dict[ServingParams, tuple[Scorer, Explorer]] = {}
        self._lock = threading.Lock()

    def parts(self, params: ServingParams) -> tuple[Scorer, Explorer]:
        """The scorer and explorer of ``params`` over the deployment's settings."""
        found = self._parts.get(params)
        if found is None:
            with self._lock:
                if len(self._parts) > 256:  # experiments come and go: never grow unbounded
                    self._parts.clear()
                cfg = params.apply(self.config)
                found = self._parts[params] = (Scorer(cfg, self.cold), Explorer(cfg))
        return found

    def arm(
        self,
        default: Served,
        version: int | None,
        params: ServingParams,
        label: tuple[object, ...],
        variant: str | None = None,
        missing: bool = False,
    ) -> Arm:
        """The arm serving model ``version`` (``None``: ``default``) with ``params``;
        ``missing``: the variant's pinned model could not be resolved (an error)."""
        served, error = default, missing
        if version is not None and version != default.version:
            found = self.models.get_version(MODEL_NAME, version)
            if found is None:
                error = True
            else:
                served = found
        scorer, explorer = self.parts(params)
        return Arm(served, bundle_of(served), scorer, explorer, label, error, variant)

    def merged(
        self, default: Served, assignments: tuple[Assignment, ...]
    ) -> tuple[Arm, Arm | None]:
        """The arm of an A/B answer (and, for an interleaving experiment, the other side's).

        Both sides of an interleaved list carry the settings of the user's other layers'
        experiments, so that they differ only by what the interleaving experiment compares.
        """
        version: int | None = None
        params: dict[str, object] = {}
        label: list[object] = []
        interleaving: Assignment | None = None
        missing = False
        for a in assignments:
            label.append((a.experiment, a.variant))
            missing = missing or a.unresolved
            if a.other is not None:
                interleaving = a
            if a.version is not None:
                version = a.version
            params.update(a.params.model_dump(exclude_none=True))
        merged = ServingParams.model_validate(params)
        if interleaving is None or interleaving.other is None:
            return self.arm(default, version, merged, tuple(label), missing=missing), None
        name, v2, p2 = interleaving.other
        theirs = ServingParams.model_validate({**params, **p2.model_dump(exclude_none=True)})
        mine = self.arm(default, version, merged, tuple(label), interleaving.variant, missing)
        other = self.arm(default, v2, theirs, ((interleaving.experiment, name),), name)
        return mine, other
