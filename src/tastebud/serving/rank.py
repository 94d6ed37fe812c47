"""Similar items and re-ranking (the seed's ``personalizeContent``, ``computeRelevanceScore``
and ``adaptText``), on top of the personalization engine."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from tastebud.errors import UnknownItem
from tastebud.experiments.definitions import Surface
from tastebud.serving.bundle import MODEL_NAME
from tastebud.serving.engine import PersonalizationEngine
from tastebud.serving.impressions import exposure_impression
from tastebud.serving.scorer import top_indices
from tastebud.serving.signals import liked_items, session_items, suppressed_items
from tastebud.serving.types import (
    Context,
    Exposure,
    ModelRef,
    RankedItem,
    Ranking,
    Reason,
    ReasonType,
    RecommendedItem,
    SimilarItems,
)

__all__ = [
    "ContentItem",
    "SKILL_LEVELS",
    "rank_content",
    "similar_items",
]

SKILL_LEVELS = ("beginner", "intermediate", "expert")
"""Text variants by skill level, simplest first (``advanced`` is read as ``expert``)."""
RECENCY_HALF_LIFE_DAYS = 7.0
_BY_MODEL = Reason(ReasonType.MODEL, "Ranked by your recommendations model")
_RECENT = Reason(ReasonType.RECENT, "Recently published")
_DEFAULT = Reason(ReasonType.DEFAULT, "Other content")


@dataclass(frozen=True)
class ContentItem:
    """One piece of content to rank."""

    id: str
    category: str | None = None
    type: str | None = None
    created_ms: int | None = None
    variants: dict[str, str] | None = None


def similar_items(
    engine: PersonalizationEngine,
    item_id: str,
    k: int,
    *,
    user_key: str | None = None,
    user_id: str | None = None,
) -> SimilarItems:
    """Items the production model relates most to ``item_id`` (hidden ones and the item itself
    left out), with scores in [0, 1]. With the user who asks (``user_key``, and ``user_id``
    for the impression), experiments on the ``similar`` surface apply to them.

    Raises:
        UnknownItem: the model does not know the item (new items join at the next training).
    """
    started = time.perf_counter()
    served, bundle = engine.served_model()
    exposures: tuple[Exposure, ...] = ()
    error = False
    view = engine.experiments
    if user_key is not None and view is not None and view.active(Surface.SIMILAR):
        state = engine.state(user_key).state
        arm, _, exposures = engine.arm_for(
            served,
            bundle,
            user_key,
            state,
            Surface.SIMILAR,
            Context(),
            engine.personalization_allowed(user_key),
        )
        error = arm.error
        if arm.bundle.loaded.items.index(item_id) >= 0:
            served, bundle = arm.served, arm.bundle
        elif exposures:
            error = True  # the variant's model does not know the item: production answers
    loaded = bundle.loaded
    j = loaded.items.index(item_id)
    if j < 0:
        raise UnknownItem(
            "the production model does not know this item yet (it joins at the next full training)"
        )
    snap = engine.catalog.get()
    hidden = snap.aligned(served.artifact_id, loaded.items.ids).hidden
    scores = loaded.model.item_scores(np.array([j])).astype(np.float32)
    scores[hidden] = -np.inf
    scores[j] = -np.inf
    picked = [int(i) for i in top_indices(scores, k) if scores[i] > -np.inf]
    best = float(scores[picked[0]]) if picked else 1.0
    title = snap.titles.get(item_id, item_id)
    why = Reason(ReasonType.SIMILAR_TO, f"Similar to {title}", item_id=item_id)
    result = SimilarItems(
        item_id,
        tuple(
            RecommendedItem(
                loaded.items.ids[i],
                round(max(0.0, float(scores[i]) / best) if best > 0 else 0.0, 6),
                why,
            )
            for i in picked
        ),
        ModelRef.of(served),
        exposures,
    )
    if exposures and user_id:
        _log_exposure(
            engine,
            [i.item_id for i in result.items],
            user_id,
            result.model,
            exposures,
            Surface.SIMILAR,
            started,
            error,
        )
    return result


def _log_exposure(
    engine: PersonalizationEngine,
    item_ids: list[str],
    user_id: str,
    model: ModelRef,
    exposures: tuple[Exposure, ...],
    surface: Surface,
    started: float,
    error: bool = False,
) -> None:
    """An exposed user's ``similar`` or ``rank`` answer, stored as an impression."""
    if engine.impressions is not None and engine.config.log_impressions:
        latency_ms = (time.perf_counter() - started) * 1000
        engine.impressions.log(
            exposure_impression(
                item_ids, user_id, model, exposures, surface.value, latency_ms, error
            )
        )


def _variant(variants: dict[str, str] | None, skill: str | None) -> tuple[str | None, str | None]:
    """The text variant for ``skill``: the exact level, else the nearest simpler one, else the
    simplest there is."""
    if not variants:
        return None, None
    norm = {("expert" if k.lower() == "advanced" else k.lower()): k for k in variants}
    level = "expert" if (skill or "").lower() == "advanced" else (skill or "").lower()
    order = list(SKILL_LEVELS)
    if level in order:
        for lvl in reversed(order[: order.index(level) + 1]):
            if lvl in norm:
                return lvl, variants[norm[lvl]]
    for lvl in order:
        if lvl in norm:
            return lvl, variants[norm[lvl]]
    first = next(iter(variants))
    return first, variants[first]


def rank_content(
    engine: PersonalizationEngine,
    user_key: str,
    content: list[ContentItem],
    *,
    skill: str | None = None,
    now_ms: int | None = None,
    user_id: str | None = None,
) -> Ranking:
    """Re-order ``content`` for the user. An item the production model knows is scored by the
    model blended with the session and the items the user liked (its percentile among all
    items); any other by the user's category affinity (0.6; liked items' categories count) and
    its recency (0.4, half-life 7 days). Each gets a relevance in [0, 1], the reason, and the
    text variant for the user's skill level. Items the user marked ``not_interested`` or
    ``dislike`` are left out, as in recommendations, and listed in ``suppressed``. A user in
    an experiment on the ``rank`` surface is scored by their variant (``user_id``, the raw
    id, only goes into the exposure's impression, which the ingest path pseudonymizes)."""
    started = time.perf_counter()
    now = int(time.time() * 1000) if now_ms is None else now_ms
    read = engine.state(user_key)
    state = read.state
    never = suppressed_items(state)
    suppressed = tuple(c.id for c in content if c.id in never)
    content = [c for c in content if c.id not in never]
    liked = liked_items(state)
    served = engine.models.get(MODEL_NAME)
    pct: dict[str, float] = {}
    exposures: tuple[Exposure, ...] = ()
    error = False
    if served is not None:
        served, bundle = engine.served_model()
        personal = engine.personalization_allowed(user_key)
        arm, _, exposures = engine.arm_for(
            served, bundle, user_key, state, Surface.RANK, Context(), personal
        )
        error = arm.error
        served, loaded = arm.served, arm.bundle.loaded
        known = [c.id for c in content if loaded.items.index(c.id) >= 0]
        idx = loaded.users.index(user_key)
        session = list(dict.fromkeys(session_items(state, loaded.items)))
        if known and (idx >= 0 or session):
            scores = arm.scorer.model_scores(loaded, idx, session)
            finite = np.isfinite(scores)
            order = np.sort(scores[finite])
            for item in known:
                s = scores[loaded.items.index(item)]
                if np.isfinite(s):
                    pct[item] = float(np.searchsorted(order, s, side="right") / len(order))
    interests: dict[str, float] = dict(state.categories)
    stored = (state.features or {}).get("content_category_interests")
    for name in stored if isinstance(stored, list) else ():
        if isinstance(name, str):
            interests[name] = interests.get(name, 0.0) + 1.0
    if liked:
        category = engine.catalog.get().category
        for item in liked:
            cat = category.get(item)
            if cat is not None:
                interests[cat] = interests.get(cat, 0.0) + 1.0
    top = max(interests.values(), default=0.0)
    out: list[RankedItem] = []
    for c in content:
        affinity = interests.get(c.category or "", 0.0) / top if top > 0 else 0.0
        age_days = None if c.created_ms is None else max(0.0, (now - c.created_ms) / 86_400_000)
        recency = 0.0 if age_days is None else math.pow(0.5, age_days / RECENCY_HALF_LIFE_DAYS)
        why: Reason
        if c.id in pct:
            score, why = pct[c.id], _BY_MODEL
        else:
            score = 0.6 * affinity + 0.4 * recency
            if affinity >= 0.5:
                why = Reason(
                    ReasonType.INTEREST,
                    f"Matches your interest in {c.category}",
                    category=c.category,
                )
            elif recency >= 0.5:
                why = _RECENT
            else:
                why = _DEFAULT
        level, text = _variant(c.variants, skill)
        out.append(RankedItem(c.id, round(min(1.0, max(0.0, score)), 6), why, level, text))
    out.sort(key=lambda r: -r.score)
    model = None if served is None else ModelRef.of(served)
    if exposures and user_id and model is not None:
        _log_exposure(
            engine, [r.id for r in out], user_id, model, exposures, Surface.RANK, started, error
        )
    return Ranking(tuple(out), suppressed, skill, read.degraded, model, exposures)
