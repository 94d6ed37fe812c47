"""The personalization engine's parts, on tiny fitted models without a database (issue 16,
points 4 and 5): cold-start vectors keyed by the model version, not by an address Python reuses;
every documented fallback label emitted by some path, and no other; the cache, the scorer, the
explainer and the consent view each doing their one job."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any, cast

import numpy as np
import pytest
from prometheus_client import REGISTRY

from tastebud.config import ServingConfig
from tastebud.errors import ModelNotReady
from tastebud.ids import Vocabulary
from tastebud.models import ItemKNN, Popularity, TrainingData
from tastebud.monitoring.metrics import FallbackReason
from tastebud.realtime import MemoryState, RealtimeGuard, Update, UserState
from tastebud.registry.recommender import LoadedModel
from tastebud.serving import (
    CatalogSnapshot,
    CatalogView,
    ListRequest,
    Mode,
    ModelServer,
    PersonalizationEngine,
    RecommenderBundle,
    Served,
)
from tastebud.serving.cache import ListCache
from tastebud.serving.coldstart import ChosenList, ColdStartLists, ColdStartScores, ListKind
from tastebud.serving.explain import popular_reason
from tastebud.serving.scorer import top_indices
from tastebud.serving.signals import consent_view, fingerprint
from tastebud.serving.types import Context, ModelRef, RecommendationList

MONITORING_DOC = Path(__file__).resolve().parents[1] / "docs" / "monitoring.md"


def fitted(n_items: int, *, knn: bool = False) -> LoadedModel:
    """A model of 3 users over ``n_items`` items (item ``j`` is ``i<j>``)."""
    users = [0, 0, 1, 1, 2, 2, 2]
    items = [j % n_items for j in (0, 1, 1, 2, 0, 2, 3)]
    data = TrainingData.from_arrays(3, n_items, users, items)
    model = ItemKNN().fit(data) if knn else Popularity().fit(data)
    return LoadedModel(
        model,
        Vocabulary(["u0", "u1", "u2"]),
        Vocabulary([f"i{j}" for j in range(n_items)]),
        {},
        seen=data.matrix(),
    )


class StubModels:
    """The production model a test chooses (``ModelServer.get``)."""

    def __init__(self) -> None:
        self.served: Served | None = None

    def get(self, name: str) -> Served | None:
        return self.served

    def serve(self, version: int, bundle: RecommenderBundle) -> None:
        self.served = Served("recommendations", version, f"artifact-{version}", "x", bundle, 0.0)


class StubCatalog:
    """A fixed catalogue (``CatalogView.get``)."""

    def __init__(self, category: dict[str, str | None] | None = None) -> None:
        self.snap = CatalogSnapshot(1, category or {}, frozenset(), {}, {})

    def get(self) -> CatalogSnapshot:
        return self.snap


def engine_for(
    models: StubModels, realtime: Any = None, catalog: StubCatalog | None = None, **config: Any
) -> PersonalizationEngine:
    return PersonalizationEngine(
        cast(ModelServer, models),
        realtime if realtime is not None else MemoryState(),
        cast(CatalogView, catalog or StubCatalog()),
        ServingConfig(**config),
    )


# -- point 4: the cold-start cache ------------------------------------------------------------
def test_cold_start_vectors_survive_a_swap_to_a_model_at_the_same_address() -> None:
    """Issue 16, point 4: the cold-start cache was keyed by ``id(bundle)``; after a swap freed
    the old bundle, Python gave its address to the new one, which then got the old model's
    vector (here 3 scores for a 5-item model: a shape mismatch, a 500)."""
    models = StubModels()
    engine = engine_for(models, cache_ttl_s=0)
    small, large, lists = fitted(3), fitted(5), ColdStartLists()
    keep: list[RecommenderBundle] = []
    reused: RecommenderBundle | None = None
    # Which freed block an allocation gets is up to the allocator: swap until the new bundle
    # lands where the old one was (usually in the first round).
    interval = sys.getswitchinterval()
    for version in range(1, 100):
        models.serve(version, RecommenderBundle(small, lists))
        first = engine.recommend("stranger", ListRequest(10))
        assert first.mode is Mode.COLD_START and len(first.items) == 3
        address = id(models.served.obj)  # type: ignore[union-attr]
        sys.setswitchinterval(60.0)  # no other thread allocates between the free and ours
        try:
            models.served = None  # the swap frees the old bundle: its address is free again
            fresh = [RecommenderBundle(large, lists) for _ in range(4)]
        finally:
            sys.setswitchinterval(interval)
        reused = next((b for b in fresh if id(b) == address), None)
        keep.extend(fresh)  # held, so that the next round's blocks are others
        if reused is not None:
            break
    assert reused is not None, "Python never reused the address (the scenario of the bug)"
    models.serve(1000, reused)
    second = engine.recommend("stranger", ListRequest(10))
    assert second.mode is Mode.COLD_START
    assert sorted(i.item_id for i in second.items) == [f"i{j}" for j in range(5)]


def test_cold_start_scores_are_cached_per_artifact_and_list() -> None:
    cache = ColdStartScores(max_entries=2)
    loaded = fitted(4)
    lists = ColdStartLists.from_json({"global": ["i3", "i0"], "device": {"mobile": ["i1"]}})
    overall = cache.scores("a", loaded, lists, ChosenList())
    assert overall.argmax() == 3 and cache.scores("a", loaded, lists, ChosenList()) is overall
    mobile = cache.scores("a", loaded, lists, ChosenList(ListKind.DEVICE, "mobile"))
    assert mobile.argmax() == 1
    assert cache.scores("b", loaded, lists, ChosenList()) is not overall  # another version
    assert len(cache) <= 2
    with pytest.raises(ValueError):
        overall[0] = 1.0  # shared by every request: read-only


def test_the_list_used_is_named_by_the_artifact_never_by_the_request() -> None:
    lists = ColdStartLists.from_json({"global": ["i0"], "daypart": {"night": ["i1"]}})
    night = ChosenList(ListKind.DAYPART, "night")
    from tastebud.serving.coldstart import choose_list

    assert choose_list(lists, None, Context(device="toaster", hour=3)) == night
    assert choose_list(lists, None, Context(device="toaster")) == ChosenList()
    assert popular_reason(night).to_json() == {
        "type": "popular_in_context",
        "daypart": "night",
        "text": "Popular at night",
    }
    assert popular_reason(ChosenList()).to_json() == {"type": "popular", "text": "Popular overall"}


# -- point 4: fallback labels -----------------------------------------------------------------
def documented_fallback_reasons() -> set[str]:
    """The reason values docs/monitoring.md lists for ``tastebud_fallback_total``."""
    row = next(
        line
        for line in MONITORING_DOC.read_text().splitlines()
        if "`tastebud_fallback_total`" in line
    )
    meaning = row.split("|")[4]
    return set(re.findall(r"`([a-z_]+)` \(", meaning))  # each value: `name` (what it means)


def fallback_counts() -> dict[str, float]:
    return {
        s.labels["reason"]: s.value
        for metric in REGISTRY.collect()
        if metric.name == "tastebud_fallback"
        for s in metric.samples
        if s.name == "tastebud_fallback_total"
    }


class FailingState(MemoryState):
    """A backend whose reads fail (the store is down)."""

    def get(self, user_key: str) -> UserState:
        raise ConnectionError("down")


def test_every_documented_fallback_label_is_emitted_by_some_path() -> None:
    """Issue 16, point 4: the doc said ``session_only``, the code emitted ``session``. The label
    values come from one enum; every documented value is emitted by a path, and nothing else."""
    documented = documented_fallback_reasons()
    assert documented == {r.value for r in FallbackReason}
    before = fallback_counts()
    models = StubModels()
    live = MemoryState()
    live.apply(
        {"fan": Update(actions=[{"t": "page_view", "i": "i1", "c": None, "ts": 1, "s": "s"}])}
    )
    engine = engine_for(models, live)
    with pytest.raises(ModelNotReady):  # no_model
        engine.recommend("u0", ListRequest(2))
    models.serve(1, RecommenderBundle(fitted(4, knn=True)))
    assert engine.recommend("u0", ListRequest(2)).mode is Mode.PERSONALIZED  # none
    assert engine.recommend("stranger", ListRequest(2)).mode is Mode.COLD_START
    assert engine.recommend("fan", ListRequest(2)).mode is Mode.SESSION  # session_only
    down = engine_for(models, FailingState())
    assert down.recommend("u0", ListRequest(2)).degraded  # realtime_unavailable
    after = fallback_counts()
    emitted = {r for r, v in after.items() if v > before.get(r, 0.0)}
    assert emitted == documented
    assert set(after) <= documented  # no undocumented value, ever


# -- point 5: the parts -----------------------------------------------------------------------
def test_scorer_blocks_what_must_never_be_shown() -> None:
    models = StubModels()
    models.serve(1, RecommenderBundle(fitted(4, knn=True)))
    catalog = StubCatalog({"i0": "vpn", "i1": "vpn", "i2": "wifi", "i3": "wifi"})
    state = MemoryState()
    state.set_feedback("u2", "i1", "not_interested")
    engine = engine_for(models, state, catalog, cache_ttl_s=0, exploration_share=0)
    got = engine.recommend("u2", ListRequest(4)).items
    # u2's training items (i0, i2, i3) and the not-interested i1: nothing left to show.
    assert got == ()
    only = engine.recommend("u0", ListRequest(4, category="wifi", exclude=("i3",))).items
    assert [i.item_id for i in only] == ["i2"]


def test_explanations_name_the_anchor_and_scores_span_the_list() -> None:
    models = StubModels()
    models.serve(1, RecommenderBundle(fitted(4, knn=True)))
    engine = engine_for(models, cache_ttl_s=0, exploration_share=0)
    items = engine.recommend("u0", ListRequest(3)).items
    assert items and items[0].score == 1.0 and items[-1].score == (0.0 if len(items) > 1 else 1)
    for item in items:
        body = item.to_json()
        assert list(body) == ["item_id", "score", "reason"]
        reason = item.reason.to_json()
        assert list(reason)[0] == "type" and list(reason)[-1] == "text"
        assert None not in reason.values()  # absent details are left out, never null
        if item.reason.type == "because_you_watched":
            assert item.reason.item_id in {"i0", "i1"}  # u0's history


def test_cache_serves_a_list_until_the_fingerprint_or_the_clock_moves() -> None:
    now = [0.0]
    cache = ListCache(30, 2, clock=lambda: now[0])
    ranked = RecommendationList((), Mode.COLD_START, ModelRef("recommendations", 1, "a"))
    cache.put("u", (10,), "fp", ranked)
    assert cache.get("u", (10,), "fp") is ranked
    assert cache.get("u", (10,), "other state") is None
    now[0] = 31.0
    assert cache.get("u", (10,), "fp") is None
    cache.put("u", (1,), "fp", ranked)
    cache.put("u", (2,), "fp", ranked)
    cache.put("v", (3,), "fp", ranked)
    assert len(cache) == 2 and cache.forget("u") == 1 and len(cache) == 1
    assert (cache.hits, cache.misses) == (1, 2)
    off = ListCache(0, 10)
    off.put("u", (1,), "fp", ranked)
    assert len(off) == 0
    # Expired lists go when the next one is stored, long before the size bound: a cache of
    # dead lists would only give the garbage collector more to walk.
    roomy = ListCache(30, 100_000, clock=lambda: now[0])
    for n in range(50):
        now[0] = 100.0 + n
        roomy.put(f"user-{n}", (10,), "fp", ranked)
    assert len(roomy) == 30  # those stored in the last 30 s (the one of second 119 expired)
    assert roomy.get("user-49", (10,), "fp") is ranked and roomy.get("user-19", (10,), "fp") is None


def test_consent_view_keeps_only_what_the_user_never_wants_to_see() -> None:
    state = UserState(
        [{"t": "page_view", "i": "a", "c": "vpn", "ts": 5, "s": "s"}],
        {"a": 1},
        {"vpn": 1},
        ["a"],
        {"segment": "pro"},
        {"a": "like", "b": "dislike", "c": "not_interested"},
    )
    view = consent_view(state)
    assert view.feedback == {"b": "dislike", "c": "not_interested"}
    assert not (view.actions or view.items or view.categories or view.consumed or view.features)
    assert fingerprint(view) != fingerprint(state)


def test_memory_backend_is_called_directly_without_threads() -> None:
    """``memory://`` behaves as before: no thread hand-off, no budget."""
    guard = RealtimeGuard(MemoryState(), budget_s=1e-9)
    guard.apply({"u": Update(items={"a": 1})})
    assert guard.read("u").state.items == {"a": 1} and not guard.read("u").degraded
    assert guard._pool is None and guard._reads is None  # noqa: SLF001 - no thread started


def test_top_indices_keeps_only_finite_scores_whatever_k() -> None:
    inf, nan = np.inf, np.nan
    scores = np.array([0.5, -inf, 2.0, nan, 0.5, 1.0], np.float32)
    assert top_indices(scores, 2).tolist() == [2, 5]
    assert top_indices(scores, 4).tolist() == [2, 5, 0, 4]  # the NaN sorts above all: skipped
    assert top_indices(scores, 99).tolist() == [2, 5, 0, 4]
    assert top_indices(np.array([-inf, -inf], np.float32), 3).tolist() == []
    assert top_indices(scores, 0).tolist() == []


def test_an_unchanged_catalogue_keeps_its_snapshot(services: Any) -> None:
    """A re-read that finds nothing changed keeps the snapshot (its version keys the cached
    lists); a change gives a new one, already aligned with the models in use."""
    services.catalog.put_items(
        [{"item_id": f"i{n}", "category": "c", "created_at": 1_000.0 + n} for n in range(3)], 0
    )
    view = CatalogView(services.store, refresh_s=3600)
    first = view.get()
    aligned = first.aligned("model-a", ["i0", "i1", "i2"])
    assert view.refresh() is first and first.new_items(2_000_000, 1.0)[0][0] == "i2"
    services.catalog.put_items([{"item_id": "i1", "category": "d"}], 0)
    second = view.refresh()
    assert second is not first and second.version == first.version + 1
    assert second._aligned["model-a"].cats.tolist() != aligned.cats.tolist()  # done ahead
