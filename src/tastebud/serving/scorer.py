"""Scoring and blending: the production model's scores for a user, plus what it relates to the
live session, a boost for the session's categories, minus what must never be shown; the best
cold-start list for a user the model does not know and who has no session."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from tastebud.config import ServingConfig
from tastebud.models import standardise
from tastebud.realtime import UserState
from tastebud.registry.recommender import LoadedModel
from tastebud.serving.bundle import RecommenderBundle
from tastebud.serving.catalog import Aligned
from tastebud.serving.coldstart import ChosenList, ColdStartScores, choose_list
from tastebud.serving.signals import NEVER, category_share, session_items
from tastebud.serving.types import ListRequest, Mode

__all__ = ["Scored", "Scorer", "top_indices"]


@dataclass(frozen=True, eq=False)
class Scored:
    """One user's blended scores over the model's items, and what went into them."""

    scores: NDArray[np.float32]
    """Blended scores; ``-inf`` for every item that must not be shown."""
    blocked: NDArray[np.bool_]
    """Items that must not be shown (training items, consumed, suppressed, hidden, excluded,
    outside the requested category)."""
    mode: Mode
    chosen: ChosenList
    """The cold-start list used (``mode`` ``cold_start``; the overall one otherwise)."""
    share: NDArray[np.float32] | None
    """Each category's share of the live session (``None``: no session)."""
    session: tuple[int, ...]
    """The session's and liked items, newest first (indices of the model's items)."""
    history: frozenset[int]
    """The user's training items."""


class Scorer:
    """Blends the model with the live session (``ServingConfig``'s weights).

    Args:
        config: The serving weights.
        cold: Cold-start score vectors (one cache per process).
    """

    def __init__(self, config: ServingConfig, cold: ColdStartScores | None = None) -> None:
        self.config = config
        self.cold = cold or ColdStartScores()

    def model_scores(
        self, loaded: LoadedModel, idx: int, session: list[int]
    ) -> NDArray[np.float32]:
        """The model's standardised scores for user ``idx`` (zeros for a user it does not know),
        plus what it relates to the ``session`` items (newest first, ``session_decay`` apart),
        weighted by ``session_item_weight``. Recommendations and re-ranking both use it."""
        if idx >= 0:
            scores = standardise(loaded.model.scores(np.array([idx]))[0])
        else:
            scores = np.zeros(len(loaded.items), np.float32)
        cfg = self.config
        if session and cfg.session_item_weight > 0:
            w = cfg.session_decay ** np.arange(len(session), dtype=np.float32)
            related = standardise(loaded.model.item_scores(np.array(session), w))
            scores = scores + cfg.session_item_weight * related
        return scores

    def score(
        self,
        artifact_id: str,
        bundle: RecommenderBundle,
        aligned: Aligned,
        user_key: str,
        state: UserState,
        request: ListRequest,
    ) -> Scored:
        """The user's scores for ``request`` (see the module docstring).

        Args:
            artifact_id: The served model version (keys the cold-start vectors).
            bundle: Its model and cold-start lists.
            aligned: The catalogue aligned with its items.
            user_key: The user's pseudonym (``""``: treated as a stranger).
            state: The user's real-time state (as consent allows it to be used).
            request: What is asked for.
        """
        loaded = bundle.loaded
        items = loaded.items
        idx = loaded.users.index(user_key)
        seen = loaded.seen
        # The row's item indices straight from the CSR arrays (indexing the matrix builds a
        # new one: a tenth of a request's CPU).
        trained = (
            np.empty(0, np.int32)
            if idx < 0 or seen is None
            else seen.indices[seen.indptr[idx] : seen.indptr[idx + 1]]
        )
        history = frozenset(trained.tolist())
        # The live session, newest first, then the items the user liked: what the model
        # relates to them counts as if they were in the user's history.
        session = session_items(state, items)
        fresh = [i for i in dict.fromkeys(session) if i not in history]
        blocked = aligned.hidden.copy()
        blocked[trained] = True
        index = items.index
        for item in (
            *state.consumed,
            *request.exclude,
            *(i for i, kind in state.feedback.items() if kind in NEVER),
        ):
            j = index(item)
            if j >= 0:
                blocked[j] = True
        if request.category is not None:
            blocked |= aligned.cats != aligned.index.get(request.category, -2)
        cfg = self.config
        chosen = ChosenList()
        if idx >= 0 or fresh:
            mode = Mode.PERSONALIZED if idx >= 0 else Mode.SESSION
            scores = self.model_scores(loaded, idx, fresh)
        else:
            mode = Mode.COLD_START
            if cfg.cold_start_policy == "segment":
                segment = (state.features or {}).get("segment")
                chosen = choose_list(bundle.cold_start, segment, request.context)
            scores = self.cold.scores(artifact_id, loaded, bundle.cold_start, chosen)
        share = category_share(state, aligned.names, cfg.session_decay)
        if share is not None and cfg.session_category_weight > 0:
            cats = aligned.cats
            boost = np.where(cats >= 0, share[np.maximum(cats, 0)], 0.0).astype(np.float32)
            scores = scores + cfg.session_category_weight * boost
        scores = np.where(blocked, -np.inf, scores)
        return Scored(scores, blocked, mode, chosen, share, tuple(session), history)


def top_indices(scores: NDArray[np.float32], k: int) -> NDArray[np.int64]:
    """Indices of the ``k`` best finite scores, best first (ties: lower index).

    >>> top_indices(np.array([0.5, -np.inf, 2.0, 0.5], np.float32), 3).tolist()
    [2, 0, 3]
    """
    n = len(scores)
    k = min(k, n)
    if k <= 0:
        return np.empty(0, np.int64)
    # Blocked items are -inf: partitioning all scores leaves them out of the top k without a
    # copy of the finite ones. Fewer finite scores than k (or a NaN, which sorts above
    # everything) take the careful way.
    part = np.argpartition(scores, n - k)[n - k :] if k < n else np.arange(n)
    ok = np.isfinite(scores[part])
    if not ok.all():
        finite = np.flatnonzero(np.isfinite(scores))
        k = min(k, len(finite))
        part = finite[np.argpartition(scores[finite], len(finite) - k)[len(finite) - k :]]
    return part[np.lexsort((part, -scores[part]))].astype(np.int64, copy=False)
