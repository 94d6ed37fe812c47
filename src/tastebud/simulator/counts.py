"""Implicit "play count" data without time, shaped like Last.fm's hetrec-2011 ``user_artists``.

A benchmark dataset Tastebud can ship: ``user item count`` rows, no timestamps, a few thousand
users over a much larger catalogue, each user listing at most ``max_per_user`` items (most
exactly that many), item popularity extremely long-tailed (most items have one listener) and
counts heavy-tailed. Its structure is planted, so recommenders can be compared on it, and mixed,
so that no model family is handed the answer. The generative model:

* **Communities (genres).** ``communities`` random directions in a ``factors``-dimensional
  taste space, with skewed sizes. An item belongs to one community, or (30 %) two, plus its own
  noise; a user mixes one to three communities (a sparse Dirichlet draw) plus a personal vector
  (``personal``). Taste ``taste * (w_u . v_i)`` is the low-rank part that factor models learn.
* **Scenes.** The items of each community that have more than one listener are cut into small
  *scenes* (about ``scene_size`` items: similar artists that go together). Each user has a few
  favourite scenes (``scenes_per_user``), chosen by scene audience and taste, whose items get
  ``scene_boost``. Scenes are not in the item vectors: only co-occurrence reveals them, which
  item-item models see and a low-rank model blurs (about 1,300 scenes at the defaults).
* **Audience and appeal.** Each item has an audience size ``K_i``, a Zipf law of exponent
  ``audience_exponent`` truncated at ``audience_max`` of the users (most items have ``K = 1``),
  and an appeal ``log K_i``. Each user ranks the catalogue by ``appeal * mainstream_u *
  log K_i + taste + scene bonus + Gumbel noise`` (walking down that ranking samples without
  replacement proportionally to ``exp(logit)``), where heavy users are less mainstream
  (``tail_affinity``) and so pick more of the tail. Users then take turns, like a draft: each
  round, in a fresh random order, every user with a slot left takes her best-ranked item whose
  audience is not full. The cap is what makes the tail look like Last.fm's: independent picks
  cannot give most items exactly one listener while covering most of the catalogue (a Poisson
  count is 1 at most 37 % of the time), but an obscure artist with one fan can; and the draft
  (rather than users arriving one after another) keeps the first users from taking the whole
  niche. Users list ``max_per_user`` items (``full_share`` of them) or fewer (uniformly).
* **Counts.** ``count = count_median * activity_u * exp(count_match * match + count_sigma *
  noise)``, rounded, at least 1: ``activity_u`` is log-normal (``activity_sigma``) and ``match``
  is how much better than her average pick the item fits the user (taste and scenes, in
  standard deviations), so weighting by count carries signal, noisily.

Everything is drawn with NumPy Generators from ``seed`` (one stream per stage, one per
user for the ranking noise): the same config gives the same data. User ids read ``u00001``...,
item ids ``a00001``... (the catalogue is shuffled, so an id says nothing about popularity).
At the defaults (1,900 users, 18,000 items) generating takes one to two seconds.

Example::

    >>> data = generate_counts(CountsConfig(users=50, items=400, seed=3))
    >>> stats = data.stats()
    >>> stats.users, stats.items_per_user_max <= 50, int(data.count.min()) >= 1
    (50, True, True)
    >>> data.user_id(0), data.item_id(41)
    ('u00001', 'a00042')
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field

from tastebud.files import open_private

__all__ = [
    "CountsConfig",
    "CountsData",
    "CountsStats",
    "RowOrder",
    "generate_counts",
    "write_counts_tsv",
]

RowOrder = Literal["count", "item", "random"]
"""Order of a user's rows in the file: by count (highest first), by item id, or shuffled."""

_DUAL_SHARE = 0.3
"""Share of items that belong to a second community."""
_USER_COMMUNITIES_P = (0.45, 0.35, 0.20)
"""Probability that a user mixes one, two or three communities."""
_ITEM_NOISE = 0.4
"""Scale of an item's own direction next to its community's (norm about 1)."""
_CELLS = 4_000_000
"""Users x items scores computed at once (memory versus vectorisation): 256 users at most."""
_NOISE_KEY = 7
"""Spawn key of the users' own noise streams (``SeedSequence(seed, spawn_key=(7, user))``)."""


class CountsConfig(BaseModel):
    """What to generate. Fields out of their bounds raise ``pydantic.ValidationError``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    users: int = Field(default=1900, ge=1, le=200_000)
    """Number of users (every one gets at least one row)."""
    items: int = Field(default=18_000, ge=10, le=1_000_000)
    """Catalogue size; most, not all, items end up with a listener."""
    max_per_user: int = Field(default=50, ge=1, le=1000)
    """Most items a user lists (Last.fm's top-50 artists)."""
    seed: int = Field(default=0, ge=0, le=2**63 - 1)
    """Same seed, same data."""
    full_share: float = Field(default=0.95, ge=0.0, le=1.0)
    """Share of users who list exactly ``max_per_user`` items; the others list 1 to
    ``max_per_user - 1``, uniformly."""
    communities: int = Field(default=32, ge=1, le=1000)
    """Number of latent communities (genres)."""
    factors: int = Field(default=32, ge=2, le=512)
    """Dimension of the latent taste space."""
    personal: float = Field(default=0.6, ge=0.0, le=10.0)
    """Scale of each user's personal latent vector, next to their community mix (norm about 1)."""
    taste: float = Field(default=6.0, ge=0.0, le=50.0)
    """Weight of taste ``w_u . v_i`` in the pick logits (0: tastes play no part)."""
    scene_size: float = Field(default=6.0, ge=1.0, le=1000.0)
    """Mean number of items per scene (a small cluster of items that go together)."""
    scenes_per_user: float = Field(default=5.0, ge=0.0, le=100.0)
    """Mean number of favourite scenes per user (at least one when above 0)."""
    scene_boost: float = Field(default=5.0, ge=0.0, le=20.0)
    """Logit bonus of the items of a user's favourite scenes."""
    scene_appeal: float = Field(default=1.5, ge=0.0, le=5.0)
    """Weight of a scene's summed audience (log) when users choose their favourite scenes."""
    audience_exponent: float = Field(default=1.9, gt=1.0, le=5.0)
    """Exponent of the truncated Zipf law of audience sizes (larger: fewer popular items)."""
    audience_max: float = Field(default=0.33, gt=0.0, le=1.0)
    """Largest audience, as a share of the users."""
    appeal: float = Field(default=0.8, ge=0.0, le=5.0)
    """Weight of appeal ``log K_i`` in the pick logits (below 1 spreads picks into the tail,
    where the audience cap stops them piling up)."""
    tail_affinity: float = Field(default=0.1, ge=0.0, le=1.0)
    """How much less mainstream a user one standard deviation more active is."""
    count_median: float = Field(default=250.0, gt=0.0, le=1e6)
    """Median count of an average user's average pick."""
    activity_sigma: float = Field(default=1.0, ge=0.0, le=5.0)
    """Log-scale spread of the users' activity (a factor on all their counts)."""
    count_sigma: float = Field(default=1.0, ge=0.0, le=5.0)
    """Log-scale noise of each count."""
    count_match: float = Field(default=0.5, ge=0.0, le=5.0)
    """Log-scale count bonus per standard deviation of taste match (0: counts carry no signal
    beyond the pick itself)."""


@dataclass(frozen=True)
class CountsStats:
    """Shape of a generated dataset (what to compare with Last.fm's)."""

    rows: int
    """(user, item, count) rows."""
    users: int
    """Users with at least one row."""
    items: int
    """Distinct items with at least one row."""
    catalogue: int
    """Catalogue size (``CountsConfig.items``)."""
    single_user_share: float
    """Share of the present items that have exactly one user."""
    max_users_per_item: int
    """Users of the most popular item."""
    count_median: float
    """Median count."""
    count_mean: float
    """Mean count."""
    count_max: int
    """Largest count."""
    items_per_user_min: int
    """Fewest items of a user."""
    items_per_user_median: float
    """Median items per user."""
    items_per_user_max: int
    """Most items of a user."""
    full_user_share: float
    """Share of users with the most items any user has."""

    def summary(self) -> str:
        """One line for a terminal."""
        return (
            f"{self.rows:,} rows, {self.users:,} users, {self.items:,} of {self.catalogue:,} "
            f"items ({self.single_user_share:.0%} with one user, most popular "
            f"{self.max_users_per_item:,} users), counts median {self.count_median:g} max "
            f"{self.count_max:,}, items per user {self.items_per_user_min}-"
            f"{self.items_per_user_max} (median {self.items_per_user_median:g})"
        )


@dataclass(frozen=True)
class CountsData:
    """Generated rows: ``user[r]`` (index) played ``item[r]`` (index) ``count[r]`` times.

    Rows are grouped by user (ascending index) and, within a user, sorted by count (highest
    first, ties by item index). Indices start at 0; :meth:`user_id` and :meth:`item_id` give the
    file's ids.
    """

    config: CountsConfig
    """What was generated (the sizes that give the ids their width, the seed)."""
    user: NDArray[np.int32]
    """User index of each row (``0 .. config.users - 1``)."""
    item: NDArray[np.int32]
    """Item index of each row (``0 .. config.items - 1``)."""
    count: NDArray[np.int64]
    """Play count of each row (at least 1)."""

    def __len__(self) -> int:
        return len(self.user)

    def user_id(self, index: int) -> str:
        """External id of user ``index`` (``u00001`` for 0)."""
        return f"u{index + 1:0{_width(self.config.users)}d}"

    def item_id(self, index: int) -> str:
        """External id of item ``index`` (``a00001`` for 0)."""
        return f"a{index + 1:0{_width(self.config.items)}d}"

    def stats(self) -> CountsStats:
        """Counts that describe the data's shape."""
        per_user = np.bincount(self.user, minlength=self.config.users)
        per_user = per_user[per_user > 0]
        per_item = np.bincount(self.item, minlength=self.config.items)
        present = per_item[per_item > 0]
        empty = len(self.count) == 0
        return CountsStats(
            rows=len(self.count),
            users=len(per_user),
            items=len(present),
            catalogue=self.config.items,
            single_user_share=float(np.mean(present == 1)) if len(present) else 0.0,
            max_users_per_item=int(present.max(initial=0)),
            count_median=0.0 if empty else float(np.median(self.count)),
            count_mean=0.0 if empty else float(np.mean(self.count)),
            count_max=int(self.count.max(initial=0)),
            items_per_user_min=int(per_user.min()) if len(per_user) else 0,
            items_per_user_median=float(np.median(per_user)) if len(per_user) else 0.0,
            items_per_user_max=int(per_user.max(initial=0)),
            full_user_share=float(np.mean(per_user == per_user.max())) if len(per_user) else 0.0,
        )


def _width(n: int) -> int:
    return max(5, len(str(n)))


@dataclass(frozen=True)
class _World:
    """The catalogue and the users' planted traits."""

    vec: NDArray[np.float32]  # items x factors
    scene: NDArray[np.int64]  # item -> scene (the last scene index: none)
    scene_items: NDArray[np.int64]  # items sorted by scene
    scene_start: NDArray[np.int64]  # scene -> its first position in scene_items
    scene_vec: NDArray[np.float32]  # scenes x factors
    scene_appeal: NDArray[np.float64]  # log of the summed audience of each scene's items
    audience: NDArray[np.int64]  # item -> audience cap
    appeal: NDArray[np.float64]  # item -> log audience
    taste: NDArray[np.float32]  # users x factors
    mainstream: NDArray[np.float64]  # user -> weight of appeal
    activity: NDArray[np.float64]  # user -> log activity (standard normal)
    picks: NDArray[np.int64]  # user -> items to pick


def _world(c: CountsConfig, rng: np.random.Generator) -> _World:
    d, k = c.factors, c.communities
    # Communities: random directions (nearly orthogonal when factors >= communities), with a
    # skewed popularity (a few big genres, many small ones), in a shuffled order.
    centre = rng.standard_normal((k, d)) / np.sqrt(d)
    weight = rng.permutation(1.0 / np.arange(1, k + 1) ** 0.8)
    weight /= weight.sum()
    first = rng.choice(k, size=c.items, p=weight)
    second = rng.choice(k, size=c.items, p=weight)
    dual = (rng.random(c.items) < _DUAL_SHARE) & (second != first)
    # Audience sizes: a Zipf law truncated at audience_max of the users.
    top = max(1, round(c.audience_max * c.users))
    ks = np.arange(1, top + 1)
    pmf = ks**-c.audience_exponent
    audience = rng.choice(ks, size=c.items, p=pmf / pmf.sum()).astype(np.int64)
    # Scenes: the items with more than one listener in each community, cut into groups of about
    # scene_size (an item with one listener belongs to no scene: it has no one to go with).
    member = audience > 1
    per_community = np.bincount(first[member], minlength=k)
    n_scenes = np.where(
        per_community > 0, np.maximum(1, np.rint(per_community / c.scene_size)), 0
    ).astype(np.int64)
    offset = np.r_[0, np.cumsum(n_scenes)[:-1]]
    scene = offset[first] + (rng.random(c.items) * n_scenes[first]).astype(np.int64)
    total_scenes = int(n_scenes.sum())
    scene = np.where(member, scene, total_scenes)  # total_scenes: no scene
    home = np.where(dual[:, None], 0.75 * centre[first] + 0.5 * centre[second], centre[first])
    vec = home + _ITEM_NOISE * rng.standard_normal((c.items, d)) / np.sqrt(d)
    appeal = np.log(audience.astype(np.float64))
    scene_audience = np.bincount(scene, weights=audience, minlength=total_scenes + 1)
    scene_vec = np.zeros((total_scenes + 1, d))
    np.add.at(scene_vec, scene, vec)
    scene_vec /= np.maximum(np.bincount(scene, minlength=total_scenes + 1), 1)[:, None]
    # Users: a sparse mix of one to three communities plus a personal direction.
    n_mix = rng.choice(len(_USER_COMMUNITIES_P), size=c.users, p=_USER_COMMUNITIES_P) + 1
    gumbel = np.log(weight)[None, :] + rng.gumbel(size=(c.users, k))
    ranked = np.argsort(-gumbel, axis=1)
    mix = np.zeros((c.users, k))
    share = rng.gamma(1.0, size=(c.users, min(3, k)))
    for j in range(min(3, k)):
        on = n_mix > j
        mix[np.flatnonzero(on), ranked[on, j]] = share[on, j]
    mix /= mix.sum(axis=1, keepdims=True)
    taste = mix @ centre + c.personal * rng.standard_normal((c.users, d)) / np.sqrt(d)
    activity = rng.standard_normal(c.users)
    mainstream = np.clip(1.0 - c.tail_affinity * activity, 0.2, 2.0)
    picks = np.full(c.users, c.max_per_user, np.int64)
    partial = rng.random(c.users) >= c.full_share
    if c.max_per_user > 1:
        picks[partial] = rng.integers(1, c.max_per_user, size=int(partial.sum()))
    picks = np.minimum(picks, c.items)
    return _World(
        vec=vec.astype(np.float32),
        scene=scene,
        scene_items=np.argsort(scene, kind="stable"),
        scene_start=np.r_[0, np.cumsum(np.bincount(scene, minlength=total_scenes + 1))],
        scene_vec=scene_vec[:total_scenes].astype(np.float32),
        scene_appeal=np.log(np.maximum(scene_audience[:total_scenes], 1.0)),
        audience=audience,
        appeal=appeal,
        taste=taste.astype(np.float32),
        mainstream=mainstream,
        activity=activity,
        picks=picks,
    )


def _favourites(c: CountsConfig, w: _World, rng: np.random.Generator) -> NDArray[np.bool_]:
    """Each user's favourite scenes (users x scenes + 1; the last column, "no scene", is
    false), drawn by scene audience and taste (Gumbel top-m per user)."""
    n_scenes = len(w.scene_vec)
    fav = np.zeros((c.users, n_scenes + 1), bool)
    if c.scenes_per_user <= 0 or c.scene_boost <= 0 or n_scenes == 0:
        return fav
    m = np.minimum(1 + rng.poisson(max(c.scenes_per_user - 1.0, 0.0), size=c.users), n_scenes)
    step = _chunk(n_scenes)
    for lo in range(0, c.users, step):
        hi = min(lo + step, c.users)
        logit = (
            c.scene_appeal * w.scene_appeal[None, :]
            + c.taste * (w.taste[lo:hi] @ w.scene_vec.T)
            + rng.gumbel(size=(hi - lo, n_scenes))
        )
        kth = -np.partition(-logit, np.unique(m[lo:hi] - 1), axis=1)
        fav[lo:hi, :n_scenes] = logit >= np.take_along_axis(kth, (m[lo:hi] - 1)[:, None], axis=1)
    return fav


def _preference(
    c: CountsConfig, w: _World, fav: NDArray[np.bool_], users: NDArray[np.int64]
) -> NDArray[np.float32]:
    """Taste plus favourite-scene bonus of ``users`` for every item (no appeal, no noise)."""
    prefer: NDArray[np.float32] = np.float32(c.taste) * (w.taste[users] @ w.vec.T)
    row, scene = np.nonzero(fav[users])
    if len(row):
        # Only the items of favourite scenes get the bonus: add it where they are.
        lo, hi = w.scene_start[scene], w.scene_start[scene + 1]
        size = hi - lo
        rows = np.repeat(row, size)
        at = np.repeat(lo - np.r_[0, np.cumsum(size)[:-1]], size) + np.arange(int(size.sum()))
        prefer[rows, w.scene_items[at]] += np.float32(c.scene_boost)
    return prefer


def _ranking(
    c: CountsConfig,
    w: _World,
    fav: NDArray[np.bool_],
    users: NDArray[np.int64],
    depth: int,
    blocked: NDArray[np.bool_] | None = None,
) -> NDArray[np.int64]:
    """The ``depth`` best items of each user by ``mainstream * appeal + preference + Gumbel``,
    best first (``-1`` past the items not ``blocked``): walking down it samples without
    replacement proportionally to ``exp(logit)``. A user's Gumbel noise comes from her own
    seed, so a ranking recomputed later (deeper, or without the taken items) continues the
    same draw (up to float rounding)."""
    logit = np.float32(c.appeal) * w.mainstream[users, None].astype(np.float32) * w.appeal[None, :]
    logit += _preference(c, w, fav, users)
    for r, u in enumerate(users.tolist()):
        gen = np.random.default_rng(np.random.SeedSequence(c.seed, spawn_key=(_NOISE_KEY, u)))
        wait = gen.standard_exponential(c.items, dtype=np.float32)
        logit[r] -= np.log(np.maximum(wait, np.float32(1e-30)))  # -log(Exp(1)) is Gumbel
    if blocked is not None:
        logit[blocked] = -np.inf
    depth = min(depth, c.items)
    top = np.argpartition(-logit, depth - 1, axis=1)[:, :depth] if depth < c.items else None
    if top is None:
        top = np.broadcast_to(np.arange(c.items), logit.shape).copy()
    key = np.take_along_axis(logit, top, axis=1)
    best = np.argsort(-key, axis=1, kind="stable")
    ranked = np.take_along_axis(top, best, axis=1).astype(np.int64)
    ranked[~np.isfinite(np.take_along_axis(key, best, axis=1))] = -1
    return ranked


def _draft(
    c: CountsConfig, w: _World, fav: NDArray[np.bool_], rng: np.random.Generator
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Users take turns, like a draft: each round, in a fresh random order, every user with a
    slot left takes her best-ranked item whose audience is not full yet. Returns the picks as
    (user, item) arrays."""
    depth = min(c.items, max(8 * c.max_per_user, 200))
    step = _chunk(c.items)
    ranked = np.concatenate(
        [
            _ranking(c, w, fav, np.arange(lo, min(lo + step, c.users)), depth)
            for lo in range(0, c.users, step)
        ]
    )
    ptr = np.zeros(c.users, np.int64)
    left = w.picks.copy()
    room = w.audience.copy()
    free = np.zeros(c.users, bool)  # ranked ignoring audiences: nothing else was left
    got_user: list[NDArray[np.int64]] = []
    got_item: list[NDArray[np.int64]] = []
    while (left > 0).any():
        pending = rng.permutation(np.flatnonzero(left > 0))
        while len(pending):
            while True:  # skip taken-up items; rank deeper where a list runs out
                end = ptr[pending] >= depth
                if end.any():
                    _deepen(c, w, fav, pending[end], ranked, ptr, room, free, got_user, got_item)
                item = ranked[pending, ptr[pending]]
                full = (item < 0) | ((room[np.maximum(item, 0)] <= 0) & ~free[pending])
                if not full.any():
                    break
                ptr[pending[full]] += 1
            # An item with room for r more takes the first r users proposing it.
            order = np.argsort(item, kind="stable")
            first = np.r_[0, np.flatnonzero(np.diff(item[order])) + 1]
            rank = np.arange(len(order)) - np.repeat(first, np.diff(np.r_[first, len(order)]))
            take = np.zeros(len(pending), bool)
            take[order] = (rank < room[item[order]]) | free[pending[order]]
            who, what = pending[take], item[take]
            np.subtract.at(room, what, 1)
            ptr[who] += 1
            left[who] -= 1
            got_user.append(who)
            got_item.append(what)
            pending = pending[~take]
    return np.concatenate(got_user), np.concatenate(got_item)


def _deepen(
    c: CountsConfig,
    w: _World,
    fav: NDArray[np.bool_],
    users: NDArray[np.int64],
    ranked: NDArray[np.int64],
    ptr: NDArray[np.int64],
    room: NDArray[np.int64],
    free: NDArray[np.bool_],
    got_user: list[NDArray[np.int64]],
    got_item: list[NDArray[np.int64]],
) -> None:
    """Re-rank ``users`` whose lists ran out over the items with room that they do not have
    yet (over all the items they do not have when none has room)."""
    depth = ranked.shape[1]
    gu, gi = np.concatenate(got_user), np.concatenate(got_item)
    step = _chunk(c.items)
    for lo in range(0, len(users), step):
        part = users[lo : lo + step]
        row = np.full(c.users, -1, np.int64)
        row[part] = np.arange(len(part))
        sel = row[gu] >= 0
        mine = np.zeros((len(part), c.items), bool)
        mine[row[gu[sel]], gi[sel]] = True
        blocked = mine | (room <= 0)[None, :]
        stuck = blocked.all(axis=1)
        blocked[stuck] = mine[stuck]
        free[part[stuck]] = True
        ranked[part] = _ranking(c, w, fav, part, depth, blocked)
        ptr[part] = 0


def _chunk(columns: int) -> int:
    """Rows of a ``rows x columns`` block to compute at once."""
    return max(1, min(256, _CELLS // max(columns, 1)))


def generate_counts(config: CountsConfig | None = None) -> CountsData:
    """Draw a dataset (see the module docstring for the model); deterministic for a config."""
    c = config or CountsConfig()
    world_rng, pick_rng, count_rng = (
        np.random.default_rng(s) for s in np.random.SeedSequence(c.seed).spawn(3)
    )
    w = _world(c, world_rng)
    fav = _favourites(c, w, pick_rng)
    user, item = _draft(c, w, fav, pick_rng)
    # How much better than her average pick each item fits the user (taste and scenes).
    prefer = c.taste * np.einsum("ij,ij->i", w.taste[user], w.vec[item]) + c.scene_boost * fav[
        user, w.scene[item]
    ].astype(np.float64)
    n = np.bincount(user, minlength=c.users)
    mean = np.bincount(user, weights=prefer, minlength=c.users) / np.maximum(n, 1)
    sq = np.bincount(user, weights=(prefer - mean[user]) ** 2, minlength=c.users)
    std = np.sqrt(sq / np.maximum(n, 1))
    match = (prefer - mean[user]) / np.maximum(std[user], 1e-9)
    log_count = (
        np.log(c.count_median)
        + c.activity_sigma * w.activity[user]
        + c.count_match * match
        + c.count_sigma * count_rng.standard_normal(len(user))
    )
    count = np.maximum(1, np.rint(np.exp(log_count))).astype(np.int64)
    # Shuffled catalogue ids: an item's id says nothing about its popularity or community.
    item = count_rng.permutation(c.items)[item]
    sort = np.lexsort((item, -count, user))
    return CountsData(
        config=c,
        user=user[sort].astype(np.int32),
        item=item[sort].astype(np.int32),
        count=count[sort],
    )


def write_counts_tsv(
    data: CountsData, out: IO[bytes] | Path | str, order: RowOrder = "count"
) -> int:
    """Write ``user<TAB>item<TAB>count`` with a header line, rows grouped by user, and within a
    user ordered by ``order`` (``random``: shuffled, seeded by the config's seed). A path is
    written as a ``0600`` file. Returns the number of rows written (the header not counted)."""
    if order == "count":
        sort = np.arange(len(data))  # the data's own order
    elif order == "item":
        sort = np.lexsort((data.item, data.user))
    elif order == "random":
        tie = np.random.default_rng([data.config.seed, 1]).random(len(data))
        sort = np.lexsort((tie, data.user))
    else:
        raise ValueError(f"order must be count, item or random, not {order!r}")
    uw, iw = _width(data.config.users), _width(data.config.items)
    buf = io.StringIO()
    buf.write("user\titem\tcount\n")
    for u, i, n in zip(
        data.user[sort].tolist(), data.item[sort].tolist(), data.count[sort].tolist(), strict=True
    ):
        buf.write(f"u{u + 1:0{uw}d}\ta{i + 1:0{iw}d}\t{n}\n")
    payload = buf.getvalue().encode()
    if isinstance(out, (str, Path)):
        with open_private(Path(out)) as fh:
            fh.write(payload)
    else:
        out.write(payload)
    return len(data)
