"""Recommendations from the production ``recommendations`` model (the personalization engine
of the next issue adds session blending, filters, context and explanations on top)."""

from __future__ import annotations

from typing import Any

import numpy as np

from tastebud.errors import ModelNotReady
from tastebud.serving.models import ModelServer

__all__ = ["MODEL_NAME", "RecommendationService"]

MODEL_NAME = "recommendations"


class RecommendationService:
    """Top-k items for a user from the production model; users unknown to the model get its
    cold-start list (the most popular training items)."""

    def __init__(self, models: ModelServer) -> None:
        self.models = models

    def recommend(self, user_key: str, k: int) -> dict[str, Any]:
        """``items`` (``item_id``, ``score``), ``model`` (name, version, artifact id) and
        whether the cold-start path answered.

        Raises:
            ModelNotReady: nothing is in production yet.
        """
        served = self.models.get(MODEL_NAME)
        if served is None:
            raise ModelNotReady(
                "no production recommendations model yet: run `tastebud train --full`, then "
                "`tastebud models approve recommendations N` and `tastebud models promote "
                "recommendations N`"
            )
        loaded = served.obj
        idx = loaded.users.index(user_key)
        exclude = loaded.seen if idx >= 0 else None
        rec = loaded.model.recommend(np.array([idx]), k, exclude=exclude)
        items = [
            {"item_id": loaded.items.ids[int(i)], "score": round(float(s), 6)}
            for i, s in zip(rec.item_idx[0], rec.scores[0], strict=True)
            if i >= 0
        ]
        return {
            "items": items,
            "cold_start": idx < 0,
            "model": {"name": served.name, "version": served.version,
                      "artifact_id": served.artifact_id},
        }  # fmt: skip
