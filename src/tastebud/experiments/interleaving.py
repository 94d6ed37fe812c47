"""Team-draft interleaving: compare two rankers inside one list shown to each user.

Team-draft interleaving (Radlinski, Kurup & Joachims, "How does clickthrough data reflect
retrieval quality?", CIKM 2008) merges two rankings the way captains pick sports teams: in each
round a fair coin decides which ranker picks first, then each ranker adds its highest-ranked item
that is not in the list yet, and the item joins that ranker's *team*. A click credits the team
that placed the item; the ranker whose team earns more clicks from a user is that user's
preference, and a binomial (sign) test over users' preferences decides between the rankers
(``tastebud.experiments.stats.preference_test``).

Both rankers show their best items near the top and every user judges both, so interleaving
removes the between-user variance that dominates an A/B test: it needs far fewer users for the
same correct decision rate (bench/experiments.py measures how many fewer).

Extension: when one ranking runs out before the list is full (a ranker returned fewer items than
asked, or only items the other already placed) the other ranking fills the remaining slots with
no team (:data:`TEAM_NONE`): clicks on them are credited to nobody, because a team that keeps
picking alone would collect clicks it did not win in a fair draft. Rankings of at least ``k``
distinct items never reach this case.

Teams are small integers: :data:`TEAM_A` (0), :data:`TEAM_B` (1) and :data:`TEAM_NONE` (-1).
The draft is deterministic given its seed (serving seeds it with the list id), and the scalar
and vectorised forms draw the same coins from the same seed:

    >>> mixed = team_draft(["a1", "a2", "x"], ["x", "b2", "a1"], 4, seed=3)
    >>> sorted(mixed.items) == ["a1", "a2", "b2", "x"]
    True
    >>> mixed == team_draft(["a1", "a2", "x"], ["x", "b2", "a1"], 4, seed=3)
    True
    >>> c = credit(mixed.teams, [0, 1])
    >>> c.a + c.b
    2
    >>> preference(2, 1), preference(1, 1), preference(0, 3)
    (1, 0, -1)
"""

from __future__ import annotations

import hashlib
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, overload

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "Credit",
    "CreditMany",
    "Interleaved",
    "InterleavedMany",
    "Seed",
    "TEAM_A",
    "TEAM_B",
    "TEAM_NONE",
    "credit",
    "credit_many",
    "preference",
    "team_draft",
    "team_draft_many",
]

_T = TypeVar("_T", bound=Hashable)

TEAM_A = 0
"""Team of ranker A (the first ranking)."""
TEAM_B = 1
"""Team of ranker B (the second ranking)."""
TEAM_NONE = -1
"""No team: a slot filled after one ranking ran out, or an empty slot of a vectorised draft."""

Seed = int | str | np.random.Generator
"""A draft's randomness: an integer, a string (hashed with BLAKE2b, the same in every process:
serving passes the list id) or a NumPy generator."""


@dataclass(frozen=True)
class Interleaved(Generic[_T]):
    """One interleaved list: the items in display order and the team that placed each."""

    items: tuple[_T, ...]
    """Items in display order (position 0 first); no duplicates."""
    teams: tuple[int, ...]
    """Team of each position: :data:`TEAM_A`, :data:`TEAM_B` or :data:`TEAM_NONE`."""


@dataclass(frozen=True)
class InterleavedMany:
    """Many interleaved lists at once (one row per list), from :func:`team_draft_many`."""

    items: NDArray[np.int64]
    """Shape ``(n, k)``: item indices in display order; ``-1`` where the row ran out of items."""
    teams: NDArray[np.int8]
    """Shape ``(n, k)``: the team of each slot (:data:`TEAM_NONE` for fills and empty slots)."""


@dataclass(frozen=True)
class Credit:
    """Clicks credited to each ranker in one list (or summed over a user's lists)."""

    a: int
    """Clicks on items placed by ranker A."""
    b: int
    """Clicks on items placed by ranker B."""


@dataclass(frozen=True)
class CreditMany:
    """Clicks credited to each ranker, one entry per list (from :func:`credit_many`)."""

    a: NDArray[np.int64]
    """Shape ``(n,)``: clicks on items placed by ranker A."""
    b: NDArray[np.int64]
    """Shape ``(n,)``: clicks on items placed by ranker B."""


def _generator(seed: Seed) -> np.random.Generator:
    """A generator from a seed; strings are hashed (Python's ``hash`` differs per process)."""
    if isinstance(seed, np.random.Generator):
        return seed
    if isinstance(seed, str):
        digest = hashlib.blake2b(seed.encode(), digest_size=8).digest()
        return np.random.default_rng(int.from_bytes(digest, "big"))
    return np.random.default_rng(seed)


def _rounds(k: int) -> int:
    """Number of coin flips a list of ``k`` slots can need (one per pair of slots)."""
    return (k + 1) // 2


def team_draft(
    ranking_a: Sequence[_T], ranking_b: Sequence[_T], k: int, seed: Seed
) -> Interleaved[_T]:
    """Interleave two rankings by team draft.

    Args:
        ranking_a: Ranker A's items, best first (duplicates are skipped).
        ranking_b: Ranker B's items, best first.
        k: Length of the list to build; the result has ``min(k, |A ∪ B|)`` items.
        seed: The draft's randomness (:data:`Seed`); the same seed gives the same list.

    Returns:
        The interleaved list and each position's team. In every prefix, teams A and B differ
        in size by at most one.

    Raises:
        ValueError: ``k`` is negative.
    """
    if k < 0:
        raise ValueError(f"k must be >= 0, got {k}")
    # A fixed number of draws, made up front, so that the scalar and vectorised forms use the
    # same coins for the same seed whatever the rankings.
    a_first = _generator(seed).random(_rounds(k)) < 0.5
    items: list[_T] = []
    teams: list[int] = []
    shown: set[_T] = set()
    ia = ib = 0
    counts = [0, 0]
    while len(items) < k:
        while ia < len(ranking_a) and ranking_a[ia] in shown:
            ia += 1
        while ib < len(ranking_b) and ranking_b[ib] in shown:
            ib += 1
        a_left, b_left = ia < len(ranking_a), ib < len(ranking_b)
        if not (a_left or b_left):
            break
        if a_left and b_left:
            na, nb = counts
            # The smaller team picks; on a tie (the start of a round) the coin decides.
            team = TEAM_A if na < nb or (na == nb and bool(a_first[na])) else TEAM_B
            counts[team] += 1
            item = ranking_a[ia] if team == TEAM_A else ranking_b[ib]
        else:
            team = TEAM_NONE
            item = ranking_a[ia] if a_left else ranking_b[ib]
        items.append(item)
        teams.append(team)
        shown.add(item)
    return Interleaved(tuple(items), tuple(teams))


def team_draft_many(
    rankings_a: ArrayLike,
    rankings_b: ArrayLike,
    k: int,
    seed: Seed,
    *,
    a_first: ArrayLike | None = None,
) -> InterleavedMany:
    """Team draft of many pairs of rankings at once (vectorised over rows, for simulations).

    Row ``i`` gives the same list as ``team_draft(rankings_a[i], rankings_b[i], k, ...)`` with
    the same coins; with a single row and the same ``seed`` the coins are the same as well.

    Args:
        rankings_a: Shape ``(n, La)``: ranker A's item indices per row, best first; negative
            entries are padding (no item).
        rankings_b: Shape ``(n, Lb)``: ranker B's item indices per row.
        k: Slots per list.
        seed: The draft's randomness (:data:`Seed`), used unless ``a_first`` is given.
        a_first: Optional shape ``(n, ceil(k / 2))`` booleans: whether A picks first in each
            round (to enumerate every possible draft); replaces the coins drawn from ``seed``.

    Returns:
        Items and teams, shape ``(n, k)``.

    Raises:
        ValueError: ``k`` is negative, the rankings are not 2-D with the same number of rows,
            or ``a_first`` has the wrong shape.
    """
    if k < 0:
        raise ValueError(f"k must be >= 0, got {k}")
    a = np.asarray(rankings_a, dtype=np.int64)
    b = np.asarray(rankings_b, dtype=np.int64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[0] != b.shape[0]:
        raise ValueError(f"rankings must be 2-D with the same rows, got {a.shape} and {b.shape}")
    n, rounds = a.shape[0], _rounds(k)
    if a_first is None:
        coins = _generator(seed).random((n, rounds)) < 0.5
    else:
        coins = np.asarray(a_first, dtype=bool)
        if coins.shape != (n, rounds):
            raise ValueError(f"a_first must have shape {(n, rounds)}, got {coins.shape}")
    coins = np.concatenate([coins, np.zeros((n, 1), dtype=bool)], axis=1)  # never indexed past
    # Padding counts as already used, so a row's pointer skips it like a shown item.
    used_a, used_b = a < 0, b < 0
    if a.shape[1] == 0:
        used_a = np.ones((n, 1), dtype=bool)
        a = np.full((n, 1), -1, dtype=np.int64)
    if b.shape[1] == 0:
        used_b = np.ones((n, 1), dtype=bool)
        b = np.full((n, 1), -1, dtype=np.int64)
    items = np.full((n, k), -1, dtype=np.int64)
    teams = np.full((n, k), TEAM_NONE, dtype=np.int8)
    na = np.zeros(n, dtype=np.int64)
    nb = np.zeros(n, dtype=np.int64)
    rows = np.arange(n)
    for slot in range(k):
        # First unused entry of each ranking (argmin of a boolean finds the first False).
        ia, ib = used_a.argmin(axis=1), used_b.argmin(axis=1)
        a_left, b_left = ~used_a[rows, ia], ~used_b[rows, ib]
        both = a_left & b_left
        coin = coins[rows, na]
        pick_a = both & ((na < nb) | ((na == nb) & coin))
        pick_b = both & ~pick_a
        item = np.where(a_left & ~pick_b, a[rows, ia], np.where(b_left, b[rows, ib], -1))
        items[:, slot] = item
        teams[:, slot] = np.where(pick_a, TEAM_A, np.where(pick_b, TEAM_B, TEAM_NONE))
        na += pick_a
        nb += pick_b
        placed = (item >= 0)[:, None]
        used_a |= placed & (a == item[:, None])
        used_b |= placed & (b == item[:, None])
    return InterleavedMany(items, teams)


def credit(teams: Sequence[int] | NDArray[np.integer[Any]], clicked: Iterable[int]) -> Credit:
    """Credit each click to the team that placed the clicked item.

    Args:
        teams: The list's teams (:attr:`Interleaved.teams`).
        clicked: Clicked positions (0 first); a position clicked twice counts once.

    Returns:
        Clicks credited to A and to B (clicks on :data:`TEAM_NONE` slots count for neither).

    Raises:
        ValueError: A position outside the list.
    """
    team = np.asarray(teams, dtype=np.int64)
    positions = np.unique(np.fromiter(clicked, dtype=np.int64))
    if positions.size and (positions[0] < 0 or positions[-1] >= team.size):
        raise ValueError(f"clicked positions must be in [0, {team.size}), got {positions}")
    hit = team[positions]
    return Credit(a=int((hit == TEAM_A).sum()), b=int((hit == TEAM_B).sum()))


def credit_many(teams: ArrayLike, clicked: ArrayLike) -> CreditMany:
    """Credit of many lists at once.

    Args:
        teams: Shape ``(n, k)``: each list's teams (:attr:`InterleavedMany.teams`).
        clicked: Shape ``(n, k)`` booleans: whether each slot was clicked.

    Returns:
        Clicks credited to A and to B, per row.
    """
    team = np.asarray(teams)
    hit = np.asarray(clicked, dtype=bool)
    a = (hit & (team == TEAM_A)).sum(axis=-1, dtype=np.int64)
    b = (hit & (team == TEAM_B)).sum(axis=-1, dtype=np.int64)
    return CreditMany(a=np.asarray(a), b=np.asarray(b))


@overload
def preference(a_clicks: int, b_clicks: int) -> int: ...
@overload
def preference(
    a_clicks: NDArray[np.integer[Any]], b_clicks: NDArray[np.integer[Any]]
) -> NDArray[np.int8]: ...
def preference(
    a_clicks: int | NDArray[np.integer[Any]], b_clicks: int | NDArray[np.integer[Any]]
) -> int | NDArray[np.int8]:
    """A user's preference from the clicks credited to each ranker (over all their lists).

    Args:
        a_clicks: Clicks credited to A (an integer, or an array of users).
        b_clicks: Clicks credited to B (same shape).

    Returns:
        ``+1`` when A earned more clicks, ``-1`` when B did, ``0`` on a tie (elementwise for
        arrays). Count the ``+1`` and ``-1`` users as A's and B's wins for the binomial test.
    """
    if isinstance(a_clicks, int) and isinstance(b_clicks, int):
        return 1 if a_clicks > b_clicks else -1 if a_clicks < b_clicks else 0
    diff: NDArray[np.int64] = np.asarray(a_clicks, dtype=np.int64) - np.asarray(
        b_clicks, dtype=np.int64
    )
    return np.sign(diff).astype(np.int8)
