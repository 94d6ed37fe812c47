"""The personalization engine: the production model's scores blended with the live session,
filtered, explored, explained and logged.

One request reads the user's real-time state once (one Redis round trip), then works in
memory: model scores for a known user; plus what the model relates to the items of the live
session (items consumed since training count as if they were in the user's history) and a boost
for the session's categories; minus what must never be shown (training items, items consumed
in the session, not-interested or disliked items, hidden items, the caller's exclusions).
Unknown users get the session-based list if they have a session, else the best cold-start list
for their segment and context. A share of the slots goes to new items in categories the user
likes. Every item carries a reason; every list is logged as an impression.

With the real-time store down, the model answers alone (``degraded``), never an error.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from numpy.typing import NDArray

from tastebud.config import ServingConfig
from tastebud.errors import ModelNotReady
from tastebud.features.daypart import daypart
from tastebud.ids import Vocabulary
from tastebud.models import standardise
from tastebud.monitoring import CACHE_TOTAL, FALLBACK_TOTAL, IMPRESSIONS_TOTAL, get_logger
from tastebud.realtime import RealtimeState
from tastebud.realtime.base import UserState
from tastebud.registry.recommender import LoadedModel, load_model
from tastebud.serving.catalog import CatalogSnapshot, CatalogView
from tastebud.serving.hotswap import ModelServer, Served
from tastebud.serving.impressions import ImpressionLog

__all__ = [
    "Context",
    "MODEL_NAME",
    "PersonalizationEngine",
    "RecommenderBundle",
    "liked_items",
    "load_recommender",
    "suppressed_items",
    "top_indices",
]

_log = get_logger(__name__)
MODEL_NAME = "recommendations"
_NEVER = frozenset({"not_interested", "dislike"})


@dataclass(frozen=True)
class RecommenderBundle:
    """A served recommender with its cold-start lists."""

    loaded: LoadedModel
    cold_start: dict[str, Any]


def load_recommender(path: Path) -> RecommenderBundle:
    """The ``ModelServer`` loader of recommender artifacts (verified by the registry)."""
    loaded = load_model(path)
    cold_path = path / "cold_start.json"
    cold = orjson.loads(cold_path.read_bytes()) if cold_path.is_file() else {}
    return RecommenderBundle(loaded, cold)


@dataclass(frozen=True)
class Context:
    """Request context: selects the cold-start list and is recorded with the impression."""

    device: str | None = None
    hour: int | None = None
    locale: str | None = None
    network: str | None = None

    def key(self) -> tuple[Any, ...]:
        return (
            self.device,
            None if self.hour is None else daypart(self.hour),
            self.locale,
            self.network,
        )


@dataclass
class _Cached:
    fingerprint: tuple[Any, ...]
    body: dict[str, Any]
    expires: float


@dataclass
class _Stats:
    hits: int = 0
    misses: int = 0
    degraded: int = 0
    reasons: dict[str, int] = field(default_factory=dict)


class PersonalizationEngine:
    """Recommendations, similar items, re-ranking and feedback over the production model."""

    def __init__(
        self,
        models: ModelServer,
        realtime: RealtimeState,
        catalog: CatalogView,
        config: ServingConfig,
        impressions: ImpressionLog | None = None,
        personalization_allowed: Callable[[str], bool] = lambda _key: True,
    ) -> None:
        self.models = models
        self.personalization_allowed = personalization_allowed
        self.realtime = realtime
        self.catalog = catalog
        self.config = config
        self.impressions = impressions
        self.stats = _Stats()
        self._cache: OrderedDict[tuple[Any, ...], _Cached] = OrderedDict()
        self._cache_lock = threading.Lock()
        self._realtime_down_until = 0.0
        self._cold_cache: dict[tuple[Any, ...], NDArray[np.float32]] = {}

    # -- state --------------------------------------------------------------------------------
    def _personalize(self, user_key: str) -> bool:
        """Whether the user allows personalization (``personalization_allowed`` answers from
        memory; see ``services.PersonalizationGate``)."""
        return self.personalization_allowed(user_key)

    def state(self, user_key: str) -> tuple[UserState, bool]:
        """The user's real-time state and whether it is missing because the store is down
        (then retried after ``realtime_retry_s``)."""
        if time.monotonic() < self._realtime_down_until:
            return UserState([], {}, {}, [], None), True
        try:
            return self.realtime.get(user_key), False
        except Exception as exc:  # any backend failure: serve from the model alone
            self._realtime_down_until = time.monotonic() + self.config.realtime_retry_s
            _log.warning(
                "real-time state unavailable; serving without session",
                error_type=type(exc).__name__,
            )
            return UserState([], {}, {}, [], None), True

    def served_model(self) -> tuple[Served, RecommenderBundle]:
        served = self.models.get(MODEL_NAME)
        if served is None:
            FALLBACK_TOTAL.labels(reason="no_model").inc()
            raise ModelNotReady(
                "no production recommendations model yet: run `tastebud train --full`, then "
                "`tastebud models approve recommendations N` and `tastebud models promote "
                "recommendations N`"
            )
        bundle = served.obj
        if isinstance(bundle, LoadedModel):  # loaded without cold-start lists
            bundle = RecommenderBundle(bundle, {})
        return served, bundle

    # -- recommendations ----------------------------------------------------------------------
    def recommend(
        self,
        user_key: str,
        k: int,
        *,
        category: str | None = None,
        exclude: tuple[str, ...] = (),
        context: Context | None = None,
        user_id: str | None = None,
    ) -> dict[str, Any]:
        """The user's top ``k`` items with reasons; see the module docstring.

        ``user_id`` (the raw id, never stored) is only used to log the impression through the
        ingest path, which pseudonymizes it.
        """
        ctx = context or Context()
        served, bundle = self.served_model()
        if not self._personalize(user_key):
            # Withdrawn personalization consent: the same list as for a stranger in this
            # context; nothing about the user is read except what they asked never to see.
            state, degraded = self.state(user_key)
            state = UserState(
                [], {}, {}, [], None, {i: k for i, k in state.feedback.items() if k in _NEVER}
            )
            user_key = ""
        else:
            state, degraded = self.state(user_key)
        snap = self.catalog.get()
        fingerprint = (
            served.artifact_id,
            snap.version,
            _fingerprint(state),
            k,
            category,
            exclude,
            ctx.key(),
        )
        now = time.monotonic()
        body = self._cache_get(user_key, fingerprint, now) if not degraded else None
        if body is None:
            body = self._compute(served, bundle, snap, user_key, state, k, category, exclude, ctx)
            if not degraded and self.config.cache_ttl_s > 0:
                self._cache_put(user_key, fingerprint, body, now)
            cached = False
        else:
            cached = True
        out = {**body, "degraded": degraded, "cached": cached, "list_id": uuid.uuid4().hex}
        if degraded:
            self.stats.degraded += 1
            FALLBACK_TOTAL.labels(reason="realtime_unavailable").inc()
        if body["mode"] != "personalized":
            FALLBACK_TOTAL.labels(reason=body["mode"]).inc()
        if self.impressions is not None and self.config.log_impressions and user_id:
            IMPRESSIONS_TOTAL.inc()
            self.impressions.log(
                {
                    "event_id": f"imp-{out['list_id']}",
                    "event_type": "impression",
                    "user_id": user_id,
                    "timestamp": time.time(),
                    "data": {
                        "item_ids": [i["item_id"] for i in out["items"]],
                        "list_id": out["list_id"],
                        "model_version": f"{served.name}/v{served.version}",
                    },
                    "context": {
                        k: v for k, v in (("device_type", ctx.device), ("locale", ctx.locale)) if v
                    },
                }
            )
        return out

    def _cache_get(self, user: str, fp: tuple[Any, ...], now: float) -> dict[str, Any] | None:
        with self._cache_lock:
            hit = self._cache.get((user, fp[3:]))
            if hit is not None and hit.fingerprint == fp and hit.expires > now:
                self.stats.hits += 1
                CACHE_TOTAL.labels(result="hit").inc()
                return hit.body
        self.stats.misses += 1
        CACHE_TOTAL.labels(result="miss").inc()
        return None

    def _cache_put(self, user: str, fp: tuple[Any, ...], body: dict[str, Any], now: float) -> None:
        with self._cache_lock:
            key = (user, fp[3:])
            self._cache[key] = _Cached(fp, body, now + self.config.cache_ttl_s)
            self._cache.move_to_end(key)
            while len(self._cache) > self.config.cache_size:
                self._cache.popitem(last=False)

    def _compute(
        self,
        served: Served,
        bundle: RecommenderBundle,
        snap: CatalogSnapshot,
        user_key: str,
        state: UserState,
        k: int,
        category: str | None,
        exclude: tuple[str, ...],
        ctx: Context,
    ) -> dict[str, Any]:
        loaded = bundle.loaded
        items = loaded.items
        n = len(items)
        cats, names, hidden = snap.aligned(served.artifact_id, items.ids)
        idx = loaded.users.index(user_key)
        history = (
            set() if idx < 0 or loaded.seen is None else set(loaded.seen[idx].indices.tolist())
        )
        # The live session, newest first, then the items the user liked: what the model
        # relates to them counts as if they were in the user's history.
        session = [items.index(a["i"]) for a in state.actions if a.get("i")]
        session += [items.index(i) for i in liked_items(state)]
        session = [i for i in session if i >= 0]
        fresh = [i for i in dict.fromkeys(session) if i not in history]
        cfg = self.config
        blocked = np.zeros(n, dtype=bool)
        blocked |= hidden
        if history:
            blocked[list(history)] = True
        for item in (
            *state.consumed,
            *exclude,
            *(i for i, kind in state.feedback.items() if kind in _NEVER),
        ):
            j = items.index(item)
            if j >= 0:
                blocked[j] = True
        if category is not None:
            c = names.index(category) if category in names else -2
            blocked |= cats != c
        mode: str
        scores: NDArray[np.float32]
        chosen: tuple[str, str] = ("global", "")
        if idx >= 0 or fresh:
            mode = "personalized" if idx >= 0 else "session"
            scores = self.model_scores(loaded, idx, fresh)
        else:
            mode = "cold_start"
            scores, chosen = self._cold_scores(bundle, items.ids, state, ctx)
        share = _category_share(state, names, cfg.session_decay)
        if share is not None and cfg.session_category_weight > 0:
            boost = np.where(cats >= 0, share[np.maximum(cats, 0)], 0.0).astype(np.float32)
            scores = scores + cfg.session_category_weight * boost
        scores = np.where(blocked, -np.inf, scores)
        n_explore = (
            int(k * cfg.exploration_share) if mode != "cold_start" or share is not None else 0
        )
        top = top_indices(scores, k)
        picked = [(int(i), float(scores[i])) for i in top]
        explore = self._explore(
            snap, items, state, names, share, blocked, exclude, category, n_explore, picked
        )
        body_items = self._explain(
            bundle,
            snap,
            loaded,
            picked,
            explore,
            mode,
            session,
            history,
            cats,
            names,
            share,
            chosen,
            k,
        )
        self.stats.reasons[mode] = self.stats.reasons.get(mode, 0) + 1
        return {
            "items": body_items,
            "mode": mode,
            "model": {
                "name": served.name,
                "version": served.version,
                "artifact_id": served.artifact_id,
            },
        }

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

    def _cold_scores(
        self, bundle: RecommenderBundle, ids: list[str], state: UserState, ctx: Context
    ) -> tuple[NDArray[np.float32], tuple[str, str]]:
        """Scores from the best cold-start list: the user's segment, else the device, else the
        locale, else the time of day, else overall; the list's order gives the score. Returns
        the scores and the list really used (kind and the artifact's own key, never the
        caller's text): ``("global", "")`` when no list matched."""
        cold = bundle.cold_start
        segment = (state.features or {}).get("segment")
        choices = [
            ("segment", segment),
            ("device", ctx.device),
            ("locale", ctx.locale),
            ("daypart", None if ctx.hour is None else daypart(ctx.hour)),
        ]
        chosen: tuple[str, str] = ("global", "")
        for kind, value in choices:
            if value is not None and str(value) in cold.get(kind, {}):
                chosen = (kind, str(value))
                break
        key = (id(bundle), *chosen)
        cached = self._cold_cache.get(key)
        if cached is not None:
            return cached, chosen
        ranked: list[str] = cold[chosen[0]][chosen[1]] if chosen[1] else cold.get("global", [])
        out = np.full(len(ids), -1e3, np.float32)
        if ranked:
            vocab = bundle.loaded.items
            for r, item in enumerate(ranked):
                j = vocab.index(item)
                if j >= 0:
                    out[j] = -float(r)
        else:  # no lists in the artifact: the model's own popularity
            popular = bundle.loaded.model.recommend(np.array([-1]), min(200, len(ids)))
            for r, j in enumerate(popular.item_idx[0]):
                if j >= 0:
                    out[j] = -float(r)
        result = standardise(out)
        if len(self._cold_cache) > 256:
            self._cold_cache.clear()
        self._cold_cache[key] = result  # per loaded model: a swap brings a new bundle
        return result, chosen

    def _explore(
        self,
        snap: CatalogSnapshot,
        vocab: Vocabulary,
        state: UserState,
        names: list[str],
        share: NDArray[np.float32] | None,
        blocked: NDArray[np.bool_],
        exclude: tuple[str, ...],
        category: str | None,
        n: int,
        picked: list[tuple[int, float]],
    ) -> list[str]:
        """Up to ``n`` new items (newest first) in the categories the user likes, none already
        picked, consumed, blocked or excluded."""
        if n <= 0:
            return []
        ids = vocab.ids
        liked = set() if share is None else {names[i] for i in np.flatnonzero(share > 0)}
        if category is not None:
            liked = {category}
        if not liked:
            return []
        taken = {ids[i] for i, _ in picked}
        skip = (
            set(state.consumed)
            | set(exclude)
            | {i for i, kind in state.feedback.items() if kind in _NEVER}
        )
        out = []
        for item, cat, _ in snap.new_items(int(time.time() * 1000), self.config.new_item_days):
            if cat not in liked or item in taken or item in skip:
                continue
            j = vocab.index(item)
            if j >= 0 and blocked[j]:
                continue
            out.append(item)
            if len(out) == n:
                break
        return out

    def _explain(
        self,
        bundle: RecommenderBundle,
        snap: CatalogSnapshot,
        loaded: LoadedModel,
        picked: list[tuple[int, float]],
        explore: list[str],
        mode: str,
        session: list[int],
        history: set[int],
        cats: NDArray[np.int32],
        names: list[str],
        share: NDArray[np.float32] | None,
        chosen: tuple[str, str],
        k: int,
    ) -> list[dict[str, Any]]:
        ids = loaded.items.ids
        # "Because you watched X": X is the recent item (session first, then training
        # history) the model relates most to the recommended one.
        anchors = list(dict.fromkeys([*session[:5], *sorted(history)[-5:]]))[:6]
        related = (
            loaded.model.item_similarity(np.array(anchors), np.array([j for j, _ in picked]))
            if anchors and picked and mode != "cold_start"
            else None
        )
        top_cats = set() if share is None else {names[i] for i in np.flatnonzero(share > 0)}
        trending = bundle.cold_start.get("trending", {})
        popular = _popular_reason(chosen) if mode == "cold_start" else _RIGHT_NOW
        out: list[dict[str, Any]] = []
        scores = [s for _, s in picked if np.isfinite(s)]
        lo, hi = (min(scores), max(scores)) if scores else (0.0, 1.0)
        for pos, (j, s) in enumerate(picked):
            if not np.isfinite(s):
                continue
            item = ids[j]
            cat = names[cats[j]] if cats[j] >= 0 else None
            reason: dict[str, Any]
            if related is not None and related[:, pos].max() > 0:
                a = anchors[int(np.argmax(related[:, pos]))]
                reason = {
                    "type": "because_you_watched",
                    "item_id": ids[a],
                    "text": f"Because you watched {snap.titles.get(ids[a], ids[a])}",
                }
            elif cat is not None and cat in top_cats:
                reason = {
                    "type": "trending_in_category",
                    "category": cat,
                    "text": f"Trending in {cat}",
                }
                if item not in trending.get(cat, []):
                    reason = {
                        "type": "session_category",
                        "category": cat,
                        "text": f"More {cat}, like your current session",
                    }
            else:
                reason = dict(popular)
            score = 1.0 if hi == lo else (s - lo) / (hi - lo)
            out.append({"item_id": item, "score": round(float(score), 6), "reason": reason})
        if explore:
            # New items take the last slots (never displacing the top of the list).
            keep = max(0, k - len(explore))
            out = out[:keep]
            for item in explore:
                cat = snap.category.get(item)
                out.append(
                    {
                        "item_id": item,
                        "score": 0.0,
                        "reason": {
                            "type": "new_in_category",
                            "category": cat,
                            "text": f"New in {cat}, a category you like",
                        },
                    }
                )
        return out[:k]

    def consent_changed(self, user_key: str) -> None:
        """A consent change recorded in this process: read it now (others within a second)."""
        refresh = getattr(self.personalization_allowed, "refresh", None)
        if refresh is not None:
            refresh()

    def forget(self, user_key: str) -> int:
        """Drop the user's cached lists in this process (erasure); returns how many."""
        with self._cache_lock:
            gone = [key for key in self._cache if key[0] == user_key]
            for key in gone:
                del self._cache[key]
        return len(gone)

    def clear_cache(self) -> None:
        """Drop every cached list (tests, model swaps are already in the fingerprint)."""
        with self._cache_lock:
            self._cache.clear()


_RIGHT_NOW = {"type": "popular", "text": "Popular right now"}
_WHERE = {"device": "on {}", "locale": "in {}", "daypart": "in the {}"}


def _popular_reason(chosen: tuple[str, str]) -> dict[str, Any]:
    """The reason of a cold-start item: it names the list that was really used, by the
    artifact's own key (never the text of the request), or says the list is the overall one."""
    kind, value = chosen
    if kind == "segment":
        return {
            "type": "popular_in_segment",
            "segment": value,
            "text": f"Popular in your segment ({value})",
        }
    if kind in _WHERE:
        where = "at night" if value == "night" else _WHERE[kind].format(value)
        return {"type": "popular_in_context", kind: value, "text": f"Popular {where}"}
    return {"type": "popular", "text": "Popular overall"}


def liked_items(state: UserState) -> list[str]:
    """Items the user said they like (explicit feedback), in a stable order."""
    return sorted(i for i, kind in state.feedback.items() if kind == "like")


def suppressed_items(state: UserState) -> set[str]:
    """Items the user said never to show again (``not_interested`` or ``dislike``)."""
    return {i for i, kind in state.feedback.items() if kind in _NEVER}


def _fingerprint(state: UserState) -> tuple[Any, ...]:
    newest = state.actions[0] if state.actions else None
    return (
        None if newest is None else (newest.get("ts"), newest.get("i"), newest.get("t")),
        len(state.actions),
        sum(state.items.values()),
        len(state.consumed),
        tuple(sorted(state.feedback.items())),
        None if state.features is None else state.features.get("segment"),
    )


def _category_share(
    state: UserState, names: list[str], decay: float = 0.8
) -> NDArray[np.float32] | None:
    """Each category's share of the live session's actions, newest weighing most."""
    if not state.actions or not names:
        return None
    index = {c: i for i, c in enumerate(names)}
    share = np.zeros(len(names), np.float32)
    w = 1.0
    for a in state.actions:
        c = a.get("c")
        if c in index:
            share[index[c]] += w
        w *= decay
    total = float(share.sum())
    return None if total == 0 else share / total


def top_indices(scores: NDArray[np.float32], k: int) -> NDArray[np.int64]:
    """Indices of the ``k`` best finite scores, best first (ties: lower index)."""
    finite = np.flatnonzero(np.isfinite(scores))
    if len(finite) == 0:
        return finite
    k = min(k, len(finite))
    part = finite[np.argpartition(-scores[finite], k - 1)[:k]] if k < len(finite) else finite
    return part[np.lexsort((part, -scores[part]))]
