"""The typed result of :func:`~tastebud.evaluation.evaluate` and its JSON document (the output
of ``tastebud evaluate --json`` and of the bake-off reports): :meth:`Evaluation.to_json` writes
it, :meth:`Evaluation.from_json` reads it back."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NotRequired, TypedDict

from pydantic import JsonValue

from tastebud.monitoring.fairness import Disparity

__all__ = [
    "DatasetSummary",
    "Evaluation",
    "EvaluationJson",
    "ModelScores",
    "SliceGroup",
    "SliceScores",
    "TuningSummary",
]


@dataclass(frozen=True)
class DatasetSummary:
    """The sizes of what an evaluation ran on.

    >>> DatasetSummary(10, 3, 4, True).to_json()
    {'interactions': 10, 'users': 3, 'items': 4, 'has_time': True}
    """

    interactions: int
    users: int
    items: int
    has_time: bool
    """Whether timestamps order what users did: they vary and are not synthesised (from a
    file's order, for example); models ignore time otherwise."""

    def to_json(self) -> dict[str, int | bool]:
        """JSON-ready."""
        return {
            "interactions": self.interactions,
            "users": self.users,
            "items": self.items,
            "has_time": self.has_time,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> DatasetSummary:
        """The inverse of :meth:`to_json`."""
        return cls(
            int(data["interactions"]), int(data["users"]), int(data["items"]), data["has_time"]
        )


@dataclass(frozen=True)
class ModelScores:
    """One model's test scores.

    In JSON the metrics are top-level keys of the model's entry, next to ``ci95``, ``params``,
    ``fit_seconds`` and ``peer``.
    """

    metrics: dict[str, float | None]
    """Mean per metric (``ndcg@10``...; ``None``: not a finite number)."""
    ci95: dict[str, tuple[float, float]]
    """95% bootstrap interval (over test users) of the metrics that have one."""
    params: dict[str, JsonValue]
    """The hyper-parameters the model was refitted with (its config, as JSON)."""
    fit_seconds: float
    peer: bool
    """A peer library's model (a yardstick), not Tastebud's own."""

    def to_json(self) -> dict[str, JsonValue]:
        """JSON-ready."""
        ci95: dict[str, JsonValue] = {m: [lo, hi] for m, (lo, hi) in self.ci95.items()}
        return {
            **self.metrics,
            "ci95": ci95,
            "params": self.params,
            "fit_seconds": self.fit_seconds,
            "peer": self.peer,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ModelScores:
        """The inverse of :meth:`to_json`."""
        rest = ("ci95", "params", "fit_seconds", "peer")
        return cls(
            {k: v for k, v in data.items() if k not in rest},
            {m: (float(lo), float(hi)) for m, (lo, hi) in data["ci95"].items()},
            dict(data["params"]),
            float(data["fit_seconds"]),
            bool(data["peer"]),
        )


@dataclass(frozen=True)
class TuningSummary:
    """How a model was tuned on the validation split."""

    validation_ndcg10: float | None
    """Best validation NDCG@10 (``None``: not tuned); ``validation_ndcg@10`` in JSON."""
    trials: int
    seconds: float

    def to_json(self) -> dict[str, float | int | None]:
        """JSON-ready."""
        return {
            "validation_ndcg@10": self.validation_ndcg10,
            "trials": self.trials,
            "seconds": self.seconds,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TuningSummary:
        """The inverse of :meth:`to_json`."""
        return cls(data["validation_ndcg@10"], int(data["trials"]), float(data["seconds"]))


@dataclass(frozen=True)
class SliceGroup:
    """One user group's test users and mean metrics (top-level keys next to ``users`` in
    JSON)."""

    users: int
    metrics: dict[str, float]

    def to_json(self) -> dict[str, float]:
        """JSON-ready."""
        return {"users": self.users, **self.metrics}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SliceGroup:
        """The inverse of :meth:`to_json`."""
        return cls(int(data["users"]), {k: v for k, v in data.items() if k != "users"})


@dataclass(frozen=True)
class SliceScores:
    """One model's scores on the groups of one user attribute."""

    groups: dict[str, SliceGroup]
    disparity_ndcg10: float | None
    """Max/min ratio of the groups' NDCG@10 (``None``: a group scores 0);
    ``disparity_ndcg@10`` in JSON."""
    judged_ndcg10: Disparity
    """The same disparity with its sampling noise, as the governance check judges it;
    ``judged_ndcg@10`` in JSON."""

    def to_json(self) -> dict[str, object]:
        """JSON-ready."""
        return {
            "groups": {g: v.to_json() for g, v in self.groups.items()},
            "disparity_ndcg@10": self.disparity_ndcg10,
            "judged_ndcg@10": self.judged_ndcg10.to_json(),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SliceScores:
        """The inverse of :meth:`to_json`."""
        return cls(
            {g: SliceGroup.from_json(v) for g, v in data["groups"].items()},
            data["disparity_ndcg@10"],
            Disparity.from_json(data["judged_ndcg@10"]),
        )


class EvaluationJson(TypedDict):
    """The JSON document of an :class:`Evaluation` (``tastebud evaluate --json``)."""

    protocol: str
    seed: int
    dataset: dict[str, int | bool]
    test_users: int
    models: dict[str, dict[str, JsonValue]]
    """Per model: :meth:`ModelScores.to_json`."""
    tuning: dict[str, dict[str, float | int | None]]
    slices: dict[str, dict[str, dict[str, object]]]
    """Per user attribute, per model: :meth:`SliceScores.to_json`."""
    best_model: NotRequired[str]
    best_peer: NotRequired[str]
    best_ndcg10_over_best_peer: NotRequired[float | None]


@dataclass(frozen=True)
class Evaluation:
    """What :func:`~tastebud.evaluation.evaluate` returns.

    ``best_model`` is set when a Tastebud model ran, ``best_peer`` when a peer did; JSON holds
    ``best_ndcg10_over_best_peer`` only when both are set.
    """

    protocol: str
    seed: int
    dataset: DatasetSummary
    test_users: int
    models: dict[str, ModelScores] = field(default_factory=dict)
    tuning: dict[str, TuningSummary] = field(default_factory=dict)
    slices: dict[str, dict[str, SliceScores]] = field(default_factory=dict)
    """Per user attribute, per model."""
    best_model: str | None = None
    """Tastebud's best model, chosen on validation (never on test)."""
    best_peer: str | None = None
    """The best peer, chosen on test (which can only flatter it)."""
    best_ndcg10_over_best_peer: float | None = None
    """Test NDCG@10 of ``best_model`` over that of ``best_peer`` (``None``: the peer scores
    0, or either is missing)."""

    def to_json(self) -> EvaluationJson:
        """The JSON document of ``tastebud evaluate --json`` (keys in this order)."""
        out: EvaluationJson = {
            "protocol": self.protocol,
            "seed": self.seed,
            "dataset": self.dataset.to_json(),
            "test_users": self.test_users,
            "models": {n: m.to_json() for n, m in self.models.items()},
            "tuning": {n: t.to_json() for n, t in self.tuning.items()},
            "slices": {
                attr: {n: s.to_json() for n, s in per_model.items()}
                for attr, per_model in self.slices.items()
            },
        }
        if self.best_model is not None:
            out["best_model"] = self.best_model
        if self.best_peer is not None:
            out["best_peer"] = self.best_peer
        if self.best_model is not None and self.best_peer is not None:
            out["best_ndcg10_over_best_peer"] = self.best_ndcg10_over_best_peer
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Evaluation:
        """The inverse of :meth:`to_json`."""
        return cls(
            data["protocol"],
            int(data["seed"]),
            DatasetSummary.from_json(data["dataset"]),
            int(data["test_users"]),
            {n: ModelScores.from_json(m) for n, m in data["models"].items()},
            {n: TuningSummary.from_json(t) for n, t in data.get("tuning", {}).items()},
            {
                attr: {n: SliceScores.from_json(s) for n, s in per_model.items()}
                for attr, per_model in data.get("slices", {}).items()
            },
            data.get("best_model"),
            data.get("best_peer"),
            data.get("best_ndcg10_over_best_peer"),
        )
