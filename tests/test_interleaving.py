"""Team-draft interleaving (issue 17, point 6): the draft's invariants as properties, the credit
of clicks, the per-user preference, and the vectorised form against the scalar one."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tastebud.experiments.interleaving import (
    TEAM_A,
    TEAM_B,
    TEAM_NONE,
    Credit,
    credit,
    credit_many,
    preference,
    team_draft,
    team_draft_many,
)

rankings = st.lists(st.integers(0, 15), max_size=12)
seeds = st.integers(0, 2**32 - 1)
lengths = st.integers(0, 20)


def _first_unshown(ranking: list[int], shown: list[int]) -> int | None:
    return next((x for x in ranking if x not in shown), None)


@given(rankings, rankings, lengths, seeds)
def test_the_list_is_a_draft_of_both_rankings(
    a: list[int], b: list[int], k: int, seed: int
) -> None:
    mixed = team_draft(a, b, k, seed)
    items, teams = list(mixed.items), list(mixed.teams)
    assert set(items) <= set(a) | set(b)
    assert len(items) == len(set(items)), "an item is shown twice"
    assert len(items) == min(k, len(set(a) | set(b)))
    assert len(teams) == len(items)
    for j, (item, team) in enumerate(zip(items, teams, strict=True)):
        shown = items[:j]
        # Each team takes its ranker's best item not shown yet; a fill only once a ranking ran
        # out, and it then comes from the other ranking.
        if team == TEAM_A:
            assert item == _first_unshown(a, shown)
            assert _first_unshown(b, shown) is not None
        elif team == TEAM_B:
            assert item == _first_unshown(b, shown)
            assert _first_unshown(a, shown) is not None
        else:
            assert team == TEAM_NONE
            left_a, left_b = _first_unshown(a, shown), _first_unshown(b, shown)
            assert (left_a is None) != (left_b is None)
            assert item in (left_a, left_b)


@given(rankings, rankings, lengths, seeds)
def test_teams_stay_balanced_in_every_prefix(a: list[int], b: list[int], k: int, seed: int) -> None:
    teams = np.array(team_draft(a, b, k, seed).teams, dtype=np.int64)
    gap = np.cumsum(teams == TEAM_A) - np.cumsum(teams == TEAM_B)
    assert np.all(np.abs(gap) <= 1)


@given(
    st.lists(st.integers(0, 40), min_size=8, max_size=12, unique=True),
    st.lists(st.integers(0, 40), min_size=8, max_size=12, unique=True),
    st.integers(0, 8),
    seeds,
)
def test_long_enough_rankings_need_no_fill(a: list[int], b: list[int], k: int, seed: int) -> None:
    mixed = team_draft(a, b, k, seed)
    assert len(mixed.items) == k
    assert TEAM_NONE not in mixed.teams


@given(rankings, rankings, lengths, seeds)
def test_the_same_seed_gives_the_same_list(a: list[int], b: list[int], k: int, seed: int) -> None:
    assert team_draft(a, b, k, seed) == team_draft(a, b, k, seed)
    assert team_draft(a, b, k, f"list-{seed}") == team_draft(a, b, k, f"list-{seed}")
    rng1, rng2 = np.random.default_rng(seed), np.random.default_rng(seed)
    assert team_draft(a, b, k, rng1) == team_draft(a, b, k, rng2)


def test_the_coin_is_fair_and_the_seed_matters() -> None:
    a, b = list(range(10)), list(range(100, 110))
    firsts = [team_draft(a, b, 10, f"list-{i}").teams[0] for i in range(4000)]
    share_a = float(np.mean(np.array(firsts) == TEAM_A))
    assert abs(share_a - 0.5) < 0.04  # 5 standard errors
    assert len({team_draft(a, b, 10, s).teams for s in range(50)}) > 10


def test_identical_rankings_interleave_to_themselves() -> None:
    ranking = ["x", "y", "z", "w"]
    mixed = team_draft(ranking, ranking, 4, 0)
    assert mixed.items == tuple(ranking)
    assert sorted(mixed.teams) == [TEAM_A, TEAM_A, TEAM_B, TEAM_B]


def test_a_short_ranking_leaves_the_rest_to_the_other_without_credit() -> None:
    mixed = team_draft(["a"], ["b1", "b2", "b3", "b4"], 5, 7)
    assert set(mixed.items) == {"a", "b1", "b2", "b3", "b4"}
    assert sorted(mixed.teams[:2]) == [TEAM_A, TEAM_B]
    assert mixed.teams[2:] == (TEAM_NONE, TEAM_NONE, TEAM_NONE)
    assert credit(mixed.teams, range(5)) == Credit(a=1, b=1)


def test_negative_k_is_refused() -> None:
    with pytest.raises(ValueError):
        team_draft([1], [2], -1, 0)
    with pytest.raises(ValueError):
        team_draft_many([[1]], [[2]], -1, 0)


def _padded(rows: list[list[int]], width: int) -> np.ndarray:
    return np.array([r + [-1] * (width - len(r)) for r in rows], dtype=np.int64).reshape(
        len(rows), width
    )


@settings(max_examples=200)
@given(rankings, rankings, lengths, seeds)
def test_the_vectorised_draft_is_the_scalar_one(
    a: list[int], b: list[int], k: int, seed: int
) -> None:
    scalar = team_draft(a, b, k, seed)
    many = team_draft_many(_padded([a], 12), _padded([b], 12), k, seed)
    n = len(scalar.items)
    assert many.items[0, :n].tolist() == list(scalar.items)
    assert many.teams[0, :n].tolist() == list(scalar.teams)
    assert np.all(many.items[0, n:] == -1) and np.all(many.teams[0, n:] == TEAM_NONE)


@given(st.lists(st.tuples(rankings, rankings), min_size=1, max_size=6), lengths, seeds)
def test_explicit_coins_draft_each_row_like_the_scalar_form(
    pairs: list[tuple[list[int], list[int]]], k: int, seed: int
) -> None:
    # Row i's coins are those the scalar form draws from seed + i.
    rounds = (k + 1) // 2
    coins = np.array(
        [np.random.default_rng(seed + i).random(rounds) < 0.5 for i in range(len(pairs))]
    ).reshape(len(pairs), rounds)
    many = team_draft_many(
        _padded([p[0] for p in pairs], 12),
        _padded([p[1] for p in pairs], 12),
        k,
        0,
        a_first=coins,
    )
    for i, (a, b) in enumerate(pairs):
        scalar = team_draft(a, b, k, seed + i)
        n = len(scalar.items)
        assert many.items[i, :n].tolist() == list(scalar.items)
        assert many.teams[i, :n].tolist() == list(scalar.teams)


def test_vectorised_inputs_are_checked() -> None:
    with pytest.raises(ValueError):
        team_draft_many([1, 2], [[3, 4]], 2, 0)
    with pytest.raises(ValueError):
        team_draft_many([[1, 2]], [[3, 4]], 2, 0, a_first=np.ones((1, 3), dtype=bool))


@given(
    st.lists(st.sampled_from([TEAM_A, TEAM_B, TEAM_NONE]), max_size=12),
    st.data(),
)
def test_each_click_credits_the_team_that_placed_the_item(
    teams: list[int], data: st.DataObject
) -> None:
    clicked = data.draw(st.lists(st.integers(0, max(len(teams) - 1, 0)), max_size=8))
    if not teams:
        clicked = []
    got = credit(teams, clicked)
    distinct = set(clicked)
    assert got.a == sum(teams[p] == TEAM_A for p in distinct)
    assert got.b == sum(teams[p] == TEAM_B for p in distinct)
    mask = np.zeros((1, len(teams)), dtype=bool)
    mask[0, list(distinct)] = True
    many = credit_many(np.array([teams], dtype=np.int8).reshape(1, -1), mask)
    assert (int(many.a[0]), int(many.b[0])) == (got.a, got.b)


def test_credit_of_a_known_list() -> None:
    teams = (TEAM_B, TEAM_A, TEAM_A, TEAM_B, TEAM_NONE)
    assert credit(teams, [0, 2, 4]) == Credit(a=1, b=1)
    assert credit(teams, [1, 1, 2]) == Credit(a=2, b=0)  # a position counts once
    assert credit(teams, []) == Credit(a=0, b=0)
    with pytest.raises(ValueError):
        credit(teams, [5])
    with pytest.raises(ValueError):
        credit(teams, [-1])


@given(st.integers(0, 50), st.integers(0, 50))
def test_the_preference_is_the_sign_of_the_credit(a: int, b: int) -> None:
    expected = 1 if a > b else -1 if a < b else 0
    assert preference(a, b) == expected
    many = preference(np.array([a, b]), np.array([b, a]))
    assert many.tolist() == [expected, -expected]
    assert many.dtype == np.int8


def test_random_clicks_favour_neither_ranker() -> None:
    """Unbiasedness (Radlinski et al. 2008): clicks that ignore the items credit A and B
    equally often, even when the rankings overlap."""
    rng = np.random.default_rng(5)
    n, k = 20_000, 10
    a = np.argsort(rng.random((n, 30)), axis=1)[:, :k]
    b = np.argsort(rng.random((n, 30)), axis=1)[:, :k]
    mixed = team_draft_many(a, b, k, rng)
    clicked = rng.random((n, k)) < 0.3 / np.log2(np.arange(k) + 2.0)
    got = credit_many(mixed.teams, clicked)
    prefs = preference(got.a, got.b)
    wins_a, wins_b = int((prefs > 0).sum()), int((prefs < 0).sum())
    z = (wins_a - wins_b) / np.sqrt(wins_a + wins_b)
    assert abs(z) < 4
