"""Churn and conversion predictions for one user, from the production predictors."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from pydantic import JsonValue

# pydantic validates these: on Python 3.11 it needs typing_extensions' TypedDict.
from typing_extensions import TypedDict

from tastebud.errors import NotFound, UnknownUser
from tastebud.features.flat import flat_features
from tastebud.registry.predictor import TARGETS, PredictorArtifact, encode_rows

__all__ = [
    "PredictionReasonJSON",
    "PredictionService",
    "Predictions",
    "PredictorRefJSON",
]


class PredictorRefJSON(TypedDict):
    """The predictor version behind one probability."""

    artifact_id: str
    version: int
    model: str


class PredictionReasonJSON(TypedDict):
    """One feature that moved a prediction."""

    feature: str
    direction: Literal["increases", "decreases"]
    contribution: float


class Predictions(TypedDict):
    """What :meth:`PredictionService.predict` returns (the body of
    ``GET /v1/users/{user_id}/predictions`` without ``user_id``, and the export's
    ``predictions``)."""

    churn_probability: float | None
    """``None`` when no churn predictor is in production."""
    conversion_probability: float | None
    models: dict[str, PredictorRefJSON]
    """Per trained target."""
    reasons: dict[str, list[PredictionReasonJSON]]
    """Per trained target: the top features by contribution to the log-odds."""


class PredictionService:
    """Calibrated churn and conversion probabilities for one user, with reasons.

    Artifacts come from ``resolve(target)``: the registry's production version of ``churn`` and
    ``conversion``, hot-swapped by the serving layer when a new one is promoted. A user's
    inputs are their latest feature values (real-time store, else the latest snapshot),
    flattened like the training set.
    """

    def __init__(
        self,
        resolve: Callable[[str], tuple[PredictorArtifact, int] | None],
        features: Callable[[str], dict[str, JsonValue]],
    ) -> None:
        self._resolve = resolve
        self._features = features

    def artifact(self, target: str) -> tuple[PredictorArtifact, int] | None:
        """The production artifact for ``target`` and its version, or ``None``."""
        return self._resolve(target)

    def predict(self, user_key: str) -> Predictions:
        """``{target}_probability``, ``models`` and ``reasons`` per trained target.

        Raises:
            NotFound: no predictor has been trained yet, or nothing is known about the user.
        """
        artifacts = {t: a for t in TARGETS if (a := self.artifact(t)) is not None}
        if not artifacts:
            raise NotFound(
                "no predictor in production yet: run `tastebud train --full` (or "
                "`tastebud predictors train --target churn`), then approve and "
                "promote it (`tastebud models promote churn N`)"
            )
        values = self._features(user_key)
        if not values:
            raise UnknownUser(
                "no features for this user yet (they appear with the next "
                "`tastebud features build`)"
            )
        row = flat_features([values])[0]
        probabilities: dict[str, float | None] = {}
        models: dict[str, PredictorRefJSON] = {}
        reasons: dict[str, list[PredictionReasonJSON]] = {}
        for target in TARGETS:
            found = artifacts.get(target)
            if found is None:
                probabilities[target] = None
                continue
            art, version = found
            x = encode_rows([row], art.schema)
            probabilities[target] = round(float(art.predictor.predict_proba(x)[0]), 6)
            models[target] = {
                "artifact_id": art.artifact_id,
                "version": version,
                "model": art.predictor.chosen,
            }
            reasons[target] = [
                {"feature": e.feature, "direction": e.direction, "contribution": e.contribution}
                for e in art.predictor.explain(x)[0]
            ]
        # This key order is the export document's (orjson keeps it).
        return {
            "models": models,
            "reasons": reasons,
            "churn_probability": probabilities["churn"],
            "conversion_probability": probabilities["conversion"],
        }
