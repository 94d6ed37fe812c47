"""The personalization engine: the production model's scores blended with the live session,
filtered, explored, explained and logged.

One request reads the user's real-time state once (one Redis round trip, awaited at most
``realtime_budget_ms``), then works in memory. The engine only puts its parts together, each
with one job and a typed result:

- :class:`~tastebud.serving.scorer.Scorer`: the model's scores blended with the session, what
  must never be shown, the cold-start list for a user without either;
- :class:`~tastebud.serving.explore.Explorer`: new items in the categories the user likes;
- :class:`~tastebud.serving.explain.Explainer`: a relevance and a reason for every item;
- :class:`~tastebud.serving.cache.ListCache`: recent lists, checked against the user's state;
- :func:`~tastebud.serving.impressions.impression_event`: every answer logged as an impression;
- :func:`~tastebud.serving.signals.consent_view`: what the user's consent lets serving read.

With the real-time store down or slow, the model answers alone (``degraded``), never an error.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray

from tastebud.config import ServingConfig
from tastebud.errors import ModelNotReady, ServiceUnavailable
from tastebud.experiments.assignment import Audience, ExperimentsView
from tastebud.experiments.definitions import Surface
from tastebud.experiments.interleaving import TEAM_A, TEAM_B, TEAM_NONE, team_draft
from tastebud.monitoring.metrics import FallbackReason, record_fallback
from tastebud.realtime import RealtimeGuard, RealtimeState, StateRead, UserState
from tastebud.registry.recommender import LoadedModel
from tastebud.serving.arms import Arm, Arms, bundle_of
from tastebud.serving.bundle import MODEL_NAME, RecommenderBundle
from tastebud.serving.cache import ListCache
from tastebud.serving.catalog import CatalogSnapshot, CatalogView
from tastebud.serving.explain import Explainer
from tastebud.serving.explore import Explorer
from tastebud.serving.hotswap import ModelServer, Served
from tastebud.serving.impressions import ImpressionLog, impression_event
from tastebud.serving.scorer import Scorer, top_indices
from tastebud.serving.signals import consent_view, fingerprint
from tastebud.serving.types import (
    Context,
    Exposure,
    ListRequest,
    Mode,
    ModelRef,
    Recommendation,
    RecommendationList,
)

__all__ = ["PersonalizationEngine"]

_MODE_FALLBACK = {
    Mode.SESSION: FallbackReason.SESSION_ONLY,
    Mode.COLD_START: FallbackReason.COLD_START,
}
"""The fallback a list's mode counts as (a personalized list is none)."""


class PersonalizationEngine:
    """Recommendations, similar items, re-ranking and feedback over the production model.

    Args:
        models: The production models, hot-swapped.
        realtime: The real-time store; wrapped in a
            :class:`~tastebud.realtime.RealtimeGuard` with the configured budget unless it is
            one already.
        catalog: The catalogue view (categories, hidden and new items, titles).
        config: The serving settings.
        impressions: Where served lists are logged (``None``: not logged).
        personalization_allowed: Whether a user allows personalization (answered from memory;
            see ``privacy.PersonalizationGate``).
        experiments: The running experiments (``None``: none are served).
    """

    def __init__(
        self,
        models: ModelServer,
        realtime: RealtimeState,
        catalog: CatalogView,
        config: ServingConfig,
        impressions: ImpressionLog | None = None,
        personalization_allowed: Callable[[str], bool] = lambda _key: True,
        experiments: ExperimentsView | None = None,
    ) -> None:
        self.models = models
        self.realtime = (
            realtime
            if isinstance(realtime, RealtimeGuard)
            else RealtimeGuard(
                realtime,
                budget_s=config.realtime_budget_ms / 1000,
                retry_s=config.realtime_retry_s,
            )
        )
        self.catalog = catalog
        self.config = config
        self.impressions = impressions
        self.personalization_allowed = personalization_allowed
        self.scorer = Scorer(config)
        self.explorer = Explorer(config)
        self.explainer = Explainer()
        self.cache = ListCache(config.cache_ttl_s, config.cache_size)
        self.experiments = experiments
        self.arms = Arms(models, config, self.scorer.cold)

    # -- state --------------------------------------------------------------------------------
    def state(self, user_key: str) -> StateRead:
        """The user's real-time state, waited for at most the budget (from a worker thread;
        ``degraded`` when the store did not answer)."""
        return self.realtime.read(user_key)

    async def state_async(self, user_key: str) -> StateRead:
        """:meth:`state` from the event loop, which serves other requests meanwhile."""
        return await self.realtime.read_async(user_key)

    def served_model(self) -> tuple[Served, RecommenderBundle]:
        """The production recommendations model and its cold-start lists.

        Raises:
            ModelNotReady: no version has been promoted yet.
        """
        served = self.models.get(MODEL_NAME)
        if served is None:
            record_fallback(FallbackReason.NO_MODEL)
            raise ModelNotReady(
                "no production recommendations model yet: run `tastebud train --full`, then "
                "`tastebud models approve recommendations N` and `tastebud models promote "
                "recommendations N`"
            )
        return served, bundle_of(served)

    def model_scores(
        self, loaded: LoadedModel, idx: int, session: list[int]
    ) -> NDArray[np.float32]:
        """The model's scores for user ``idx`` blended with ``session``
        (:meth:`Scorer.model_scores <tastebud.serving.scorer.Scorer.model_scores>`)."""
        return self.scorer.model_scores(loaded, idx, session)

    # -- recommendations ----------------------------------------------------------------------
    def recommend(
        self,
        user_key: str,
        request: ListRequest,
        *,
        user_id: str | None = None,
        anonymous: bool = False,
    ) -> Recommendation:
        """The user's top ``request.k`` items with reasons (from a worker thread, or where
        waiting on the real-time store is fine); see the module docstring.

        Args:
            user_key: The user's pseudonym.
            request: What is asked for.
            user_id: The raw id (never stored), only used to log the impression through the
                ingest path, which pseudonymizes it.
            anonymous: ``user_id`` is an anonymous id.

        Raises:
            ModelNotReady: no version has been promoted yet.
        """
        served, bundle = self.served_model()
        read = self.state(user_key)
        return self._answer(served, bundle, user_key, read, request, user_id, anonymous)

    async def recommend_async(
        self,
        user_key: str,
        request: ListRequest,
        *,
        user_id: str | None = None,
        anonymous: bool = False,
    ) -> Recommendation:
        """:meth:`recommend` from the event loop: the real-time state is awaited (at most the
        budget), the rest is about a millisecond of CPU, cheaper done here than handed to a
        thread."""
        served, bundle = self.served_model()
        read = await self.state_async(user_key)
        return self._answer(served, bundle, user_key, read, request, user_id, anonymous)

    def _answer(
        self,
        served: Served,
        bundle: RecommenderBundle,
        user_key: str,
        read: StateRead,
        request: ListRequest,
        user_id: str | None,
        anonymous: bool = False,
    ) -> Recommendation:
        started = time.perf_counter()
        state, degraded = read.state, read.degraded
        personal = self.personalization_allowed(user_key)
        # Experiments assign by the user's key (a stable hash, not profiling); without
        # personalization consent their segment and history are not read to place them.
        arm, other, exposures = self.arm_for(
            served, bundle, user_key, state, Surface.RECOMMENDATIONS, request.context, personal
        )
        if not personal:
            # Withdrawn personalization consent: the same list as for a stranger in this
            # context; nothing about the user is read except what they asked never to see.
            state, user_key = consent_view(state), ""
        snap = self.catalog.get()
        list_id = uuid.uuid4().hex
        teams: tuple[str | None, ...] | None = None
        if other is not None:
            ranked, teams = self._interleaved(arm, other, snap, user_key, state, request, list_id)
            cached = False
        else:
            key = (request.key(), arm.label) if arm.label else request.key()
            stamp = (arm.served.artifact_id, snap.version, fingerprint(state))
            hit = None if degraded else self.cache.get(user_key, key, stamp)
            cached = hit is not None
            if hit is None:
                ranked = self._compute(arm, snap, user_key, state, request)
                if not degraded:
                    self.cache.put(user_key, key, stamp, ranked)
            else:
                ranked = hit
        answer = Recommendation(ranked, list_id, degraded, cached, exposures)
        if degraded:
            record_fallback(FallbackReason.REALTIME_UNAVAILABLE)
        fallback = _MODE_FALLBACK.get(ranked.mode)
        if fallback is not None:
            record_fallback(fallback)
        if self.impressions is not None and self.config.log_impressions and user_id:
            latency_ms = (time.perf_counter() - started) * 1000
            error = arm.error or (other is not None and other.error)
            self.impressions.log(
                impression_event(
                    answer,
                    user_id,
                    request.context,
                    latency_ms=latency_ms,
                    teams=teams,
                    error=error,
                    anonymous=anonymous,
                )
            )
        return answer

    def arm_for(
        self,
        served: Served,
        bundle: RecommenderBundle,
        user_key: str,
        state: UserState,
        surface: Surface,
        context: Context,
        personal: bool = True,
    ) -> tuple[Arm, Arm | None, tuple[Exposure, ...]]:
        """What the user is served with on ``surface``: their experiments' variant (and, when
        interleaving, the other variant) and the exposures to record; the production default
        and none outside every experiment. In memory: no I/O. Without ``personal``
        (personalization consent withdrawn) the user's segment and history are not read: they
        count as a new visitor of no segment."""
        arm = Arm(served, bundle, self.scorer, self.explorer, ())
        view = self.experiments
        if view is None or not view.active(surface):
            return arm, None, ()
        segment = (state.features or {}).get("segment") if personal else None
        audience = Audience(
            context.device,
            context.locale,
            segment if isinstance(segment, str) else None,
            personal and bundle.loaded.users.index(user_key) >= 0,
        )
        assigned = view.assign(user_key, surface, audience)
        if not assigned:
            return arm, None, ()
        arm, other = self.arms.merged(served, assigned)
        return arm, other, tuple(Exposure(a.experiment, a.variant) for a in assigned)

    def _compute(
        self,
        arm: Arm,
        snap: CatalogSnapshot,
        user_key: str,
        state: UserState,
        request: ListRequest,
    ) -> RecommendationList:
        served, bundle = arm.served, arm.bundle
        ids = bundle.loaded.items.ids
        aligned = snap.aligned(served.artifact_id, ids)
        scored = arm.scorer.score(served.artifact_id, bundle, aligned, user_key, state, request)
        scores = scored.scores
        picked = [(int(i), float(scores[i])) for i in top_indices(scores, request.k)]
        taken = {ids[i] for i, _ in picked}
        explore = arm.explorer.pick(
            scored, state, request, snap, aligned, bundle.loaded.items, taken
        )
        items = self.explainer.explain(scored, picked, explore, bundle, snap, aligned, request.k)
        return RecommendationList(items, scored.mode, ModelRef.of(served))

    def _interleaved(
        self,
        arm: Arm,
        other: Arm,
        snap: CatalogSnapshot,
        user_key: str,
        state: UserState,
        request: ListRequest,
        list_id: str,
    ) -> tuple[RecommendationList, tuple[str | None, ...]]:
        """Team-draft interleaving of the user's variant's list and the other variant's
        (docs/experiments.md, *Interleaving*); the draft is seeded by the list id, and
        ``teams`` says which variant placed each item."""
        mine = self._compute(arm, snap, user_key, state, request)
        theirs = self._compute(other, snap, user_key, state, request)
        by_id = {i.item_id: i for i in theirs.items}
        by_id.update({i.item_id: i for i in mine.items})
        # TEAM_NONE (-1) fills a slot when one list ran out: nobody placed it, nobody is
        # credited for its clicks.
        names = {TEAM_A: arm.variant, TEAM_B: other.variant, TEAM_NONE: None}
        drafted = team_draft(
            [i.item_id for i in mine.items],
            [i.item_id for i in theirs.items],
            request.k,
            int(list_id[:16], 16),
        )
        items = tuple(by_id[i] for i in drafted.items)
        teams = tuple(names[t] for t in drafted.teams)
        return RecommendationList(items, mine.mode, mine.model), teams

    # -- feedback, consent, erasure -----------------------------------------------------------
    def feedback(self, user_key: str, item_id: str, kind: str) -> bool:
        """Apply explicit feedback to the user's real-time state at once (read-your-writes;
        the stored ``feedback`` event applies it too). Returns whether it was applied within
        the budget."""
        try:
            self.realtime.set_feedback(user_key, item_id, kind)
        except ServiceUnavailable:
            return False
        return True

    def consent_changed(self, user_key: str) -> None:
        """A consent change recorded in this process: read it now (others within a second)."""
        refresh = getattr(self.personalization_allowed, "refresh", None)
        if refresh is not None:
            refresh()

    def forget(self, user_key: str) -> int:
        """Drop the user's cached lists (and what experiments keep of them) in this process
        (erasure); returns how many lists."""
        if self.experiments is not None:
            self.experiments.forget(user_key)
        return self.cache.forget(user_key)

    def clear_cache(self) -> None:
        """Drop every cached list (tests; model swaps are already in the fingerprint)."""
        self.cache.clear()
