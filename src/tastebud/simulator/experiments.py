"""The simulator plays users in an experiment: planted tastes decide clicks on served lists.

A served list (from a variant's model, or an interleaved list) is judged by each simulated user
through a **position-based click model** (PBM; Craswell, Zoeter, Taylor & Ramsey, WSDM 2008;
Chuklin, Markov & de Rijke, *Click Models for Web Search*, 2015): the item at rank ``r``
(0 first) is clicked with probability

    P(click) = examination(r) × attraction(user, item),   examination(r) = 1 / log2(r + 2),

independently across positions. The examination curve is the DCG discount (1 at the top, 0.63
at rank 1, 0.29 at rank 9): position bias is visible, yet a user may click several items of a
feed, which a cascade model (stop at the first click) would forbid. Independence also makes the
vectorised simulation exact (a user's clicks at one position over ``V`` identical lists are
binomial).

The attraction comes from the world's planted truth (``_world``): the user's taste for the
item's category relative to their favourite (the *match*, as in ``_behaviour``), the item's
quality, and a planted per-user *clickiness* (some people click more than others; drawn from
the world's seed, so it is a trait of the user, the same in every experiment):

    logit attraction = -4.0 + 2.5 match + 1.0 tanh(quality / 2) + clickiness,
    clickiness ~ Normal(0, 0.6).

A perfectly matched item of median quality at the top is clicked about a quarter of the time,
an item of a category the user ignores about one time in thirty.

:meth:`ExperimentPlayer.rank` is a *planted ranker*: it ranks the whole catalogue by the true
attraction blurred by Gumbel noise of a chosen scale, so rankers of planted unequal quality
(less noise is better) can be compared by A/B tests and interleaving on the same users.

Example::

    >>> player = ExperimentPlayer(SimConfig(users=50, items=200, seed=3), seed=1)
    >>> lists = player.rank(np.arange(50), 10, noise=0.5, seed=0)
    >>> clicks = player.play("nb-user-0000007", [player.item_id(int(i)) for i in lists[7]])
    >>> clicks == player.play(7, lists[7])  # the same user, list and visit: the same clicks
    True
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeAlias

import numpy as np
from numpy.typing import ArrayLike, NDArray

from tastebud.errors import InvalidInput
from tastebud.simulator._behaviour import page_success
from tastebud.simulator._simulator import Simulator
from tastebud.simulator._world import SimConfig, World, build_world, item_id, user_id

__all__ = ["ExperimentPlayer", "examination"]

_Items: TypeAlias = Sequence[str] | Sequence[int] | NDArray[np.integer[Any]]
"""A served list: external item ids or item indices, first position first."""
_LOGIT_BASE = -4.0
_LOGIT_MATCH = 2.5
_LOGIT_QUALITY = 1.0
_CLICKINESS_SD = 0.6
_USER_PREFIX, _ITEM_PREFIX = user_id(0)[:-7], item_id(0)[:-6]
_RANK_CHUNK = 1024
"""Users ranked together (memory: this many rows of catalogue-sized scores)."""


def examination(k: int) -> NDArray[np.float64]:
    """Probability that a user looks at each of the first ``k`` positions: 1 / log2(r + 2)."""
    return np.asarray(1.0 / np.log2(np.arange(k, dtype=np.float64) + 2.0))


def _logistic(x: NDArray[np.float64]) -> NDArray[np.float64]:
    return np.asarray(1.0 / (1.0 + np.exp(-x)))


class ExperimentPlayer:
    """Simulated users judging served lists through the position-based click model.

    Args:
        source: The world to play: a :class:`SimConfig` (its world is drawn) or a
            :class:`Simulator` (its world is reused, e.g. the one whose catalogue and users
            were loaded into the service).
        seed: Seed of the clicks (the world has its own, ``SimConfig.seed``): the same seed,
            user, list and visit give the same clicks.
    """

    def __init__(self, source: SimConfig | Simulator, seed: int = 0) -> None:
        if isinstance(source, Simulator):
            self.config, self.world = source.config, source.world
        else:
            self.config, self.world = source, build_world(source)
        self.seed = seed
        w: World = self.world
        # Match of every user with every category: 1 on the favourite, as in ``_behaviour``.
        self._match = w.taste / w.taste.max(axis=1, keepdims=True)
        self._appeal = np.tanh(w.item_quality / 2.0)
        # A trait of the user (world seed, own stream), not of one experiment (player seed).
        trait_rng = np.random.default_rng([self.config.seed, 7])
        self.clickiness: NDArray[np.float64] = trait_rng.normal(
            0.0, _CLICKINESS_SD, size=self.config.users
        )
        """Planted per-user shift of the attraction's logit."""

    # -- ids ------------------------------------------------------------------------------------
    @staticmethod
    def user_id(u: int) -> str:
        """External id of user ``u``."""
        return user_id(u)

    @staticmethod
    def item_id(i: int) -> str:
        """External id of item ``i``."""
        return item_id(i)

    def user_index(self, user: int | str) -> int:
        """Index of a user given by index or external id.

        Raises:
            InvalidInput: Not a user of this world.
        """
        u = _parse(user, _USER_PREFIX, "user")
        if not 0 <= u < self.config.users:
            raise InvalidInput(f"user {user!r} is not one of the {self.config.users} simulated")
        return u

    def item_indices(self, items: _Items) -> NDArray[np.int64]:
        """Indices of items given by index or external id (``nb-item-000042``).

        Raises:
            InvalidInput: An item that is not in this world's catalogue.
        """
        seq: list[object] = items.tolist() if isinstance(items, np.ndarray) else list(items)
        idx = np.array([_parse(i, _ITEM_PREFIX, "item") for i in seq], dtype=np.int64)
        bad = (idx < 0) | (idx >= self.config.items)
        if bad.any():
            raise InvalidInput(f"items not in the simulated catalogue: {np.asarray(seq)[bad]}")
        return idx

    # -- the click model -------------------------------------------------------------------------
    def attraction_many(self, users: ArrayLike, items: ArrayLike) -> NDArray[np.float64]:
        """Attraction of items for users (vectorised, indices only).

        Args:
            users: Shape ``(n,)`` user indices.
            items: Shape ``(n, k)`` item indices (row ``i`` is the list shown to ``users[i]``).

        Returns:
            Shape ``(n, k)``: the probability that each item is clicked once examined.
        """
        u = np.asarray(users, dtype=np.int64)
        i = np.asarray(items, dtype=np.int64)
        return _logistic(self._logit(u, i))

    def _logit(self, u: NDArray[np.int64], i: NDArray[np.int64]) -> NDArray[np.float64]:
        match = self._match[u[:, None], self.world.item_cat[i]]
        return np.asarray(
            _LOGIT_BASE
            + _LOGIT_MATCH * match
            + _LOGIT_QUALITY * self._appeal[i]
            + self.clickiness[u][:, None]
        )

    def attraction(self, user: int | str, items: _Items) -> NDArray[np.float64]:
        """Attraction of each item for one user (ids or indices), in list order."""
        u = self.user_index(user)
        idx = self.item_indices(items)
        out: NDArray[np.float64] = self.attraction_many(np.array([u]), idx[None, :])[0]
        return out

    def click_probabilities(self, user: int | str, items: _Items) -> NDArray[np.float64]:
        """Probability that each position of a list is clicked: examination × attraction."""
        a = self.attraction(user, items)
        return a * examination(a.size)

    def play(self, user: int | str, items: _Items, *, visit: int = 0) -> tuple[int, ...]:
        """One user's clicks on one served list.

        Args:
            user: The user (index or external id).
            items: The list as served, first position first (ids or indices).
            visit: Which of the user's visits this is: each visit draws its own clicks, and the
                same (player seed, user, visit, list) always gives the same clicks.

        Returns:
            The clicked positions (0 first), ascending.
        """
        p = self.click_probabilities(user, items)
        rng = np.random.default_rng([self.seed, 11, self.user_index(user), visit])
        return tuple(int(r) for r in np.flatnonzero(rng.random(p.size) < p))

    def play_many(
        self, users: ArrayLike, items: ArrayLike, rng: np.random.Generator
    ) -> NDArray[np.bool_]:
        """Clicks of many users on their lists at once (vectorised, indices only).

        Args:
            users: Shape ``(n,)`` user indices.
            items: Shape ``(n, k)`` item indices.
            rng: The clicks' randomness.

        Returns:
            Shape ``(n, k)`` booleans: whether each position was clicked.
        """
        a = self.attraction_many(users, items)
        return np.asarray(rng.random(a.shape) < a * examination(a.shape[1]))

    def list_views(
        self, users: ArrayLike, days: float, rng: np.random.Generator, *, exposed: bool = False
    ) -> NDArray[np.int64]:
        """How many lists each user is served in ``days``: one per page view, as the traffic.

        Sessions are Poisson at the user's planted daily rate and each has a geometric number
        of pages (``_behaviour.page_success``), as in the traffic; churn and sign-up are
        ignored (every user is alive in the window).

        Args:
            users: Shape ``(n,)`` user indices.
            days: Length of the window.
            rng: The draws' randomness.
            exposed: Condition on at least one session (the users an experiment sees: a user
                enters it at their first served list).

        Returns:
            Shape ``(n,)`` list views (at least 1 with ``exposed``).
        """
        u = np.asarray(users, dtype=np.int64)
        mean = self.world.rate[u] * days
        sessions = rng.poisson(mean)
        while exposed and (zero := sessions == 0).any():
            sessions[zero] = rng.poisson(mean[zero])
        # Pages beyond the first of s sessions: negative binomial (a sum of s geometrics).
        extra = rng.negative_binomial(np.maximum(sessions, 1), page_success(self.config))
        return np.where(sessions > 0, sessions + extra, 0).astype(np.int64)

    # -- planted rankers -------------------------------------------------------------------------
    def rank(
        self,
        users: ArrayLike,
        k: int,
        *,
        noise: float,
        seed: int,
        taste: float = 1.0,
        own_noise: float = 0.0,
        own_seed: int = 0,
    ) -> NDArray[np.int64]:
        """A ranker of planted quality: the top ``k`` items of the catalogue for each user by
        the attraction's logit, with the taste term weighted by ``taste``, plus Gumbel noise of
        scale ``noise`` (drawn from ``seed``) and of scale ``own_noise`` (from ``own_seed``).

        ``noise=0, taste=1`` is the ideal ranker. Rankers given the same ``seed`` share that
        noise (the errors of models fitted to the same data) and differ by the rest: a lower
        ``taste`` (it under-uses the users' tastes) and their own noise (``own_seed``). The
        same arguments give the same lists.

        Args:
            users: Shape ``(n,)`` user indices.
            k: List length.
            noise: Scale of the Gumbel noise on the logit.
            seed: Seed of the noise.
            taste: Share of the taste (match) term's true weight that the ranker uses.
            own_noise: Scale of the ranker's own Gumbel noise.
            own_seed: Seed of its own noise.

        Returns:
            Shape ``(n, k)`` item indices, best first.
        """
        u = np.asarray(users, dtype=np.int64)
        k = max(0, min(k, self.config.items))
        rng = np.random.default_rng([seed, 13])
        own_rng = np.random.default_rng([own_seed, 17])
        every = np.arange(self.config.items)
        out = np.empty((u.size, k), dtype=np.int64)
        for lo in range(0, u.size if k else 0, _RANK_CHUNK):
            rows = u[lo : lo + _RANK_CHUNK]
            items = np.broadcast_to(every, (rows.size, every.size))
            score = self._logit(rows, items)
            if taste != 1.0:
                match = self._match[rows[:, None], self.world.item_cat[items]]
                score = score - (1.0 - taste) * _LOGIT_MATCH * match
            score = score + noise * rng.gumbel(size=score.shape)
            if own_noise:
                score = score + own_noise * own_rng.gumbel(size=score.shape)
            top = np.argpartition(-score, k - 1, axis=1)[:, :k]
            order = np.argsort(-np.take_along_axis(score, top, axis=1), axis=1, kind="stable")
            out[lo : lo + rows.size] = np.take_along_axis(top, order, axis=1)
        return out


def _parse(value: object, prefix: str, what: str) -> int:
    """An index from an integer or an external id with ``prefix``."""
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, str) and value.startswith(prefix) and value[len(prefix) :].isdigit():
        return int(value[len(prefix) :])
    raise InvalidInput(f"not a simulated {what}: {value!r}")
