"""The simulator playing users in an experiment (issue 17, point 8): the click model is seeded,
shows position bias, follows the planted tastes, and makes a planted better ranker win both an
A/B comparison and an interleaving."""

from __future__ import annotations

import numpy as np
import pytest

from tastebud.errors import InvalidInput
from tastebud.experiments.interleaving import credit_many, preference, team_draft_many
from tastebud.experiments.stats import preference_test
from tastebud.simulator import SimConfig, Simulator
from tastebud.simulator.experiments import ExperimentPlayer, examination

CONFIG = SimConfig(users=3000, items=400, days=5, seed=11)


@pytest.fixture(scope="module")
def player() -> ExperimentPlayer:
    return ExperimentPlayer(CONFIG, seed=5)


def test_the_same_seed_user_list_and_visit_give_the_same_clicks(player: ExperimentPlayer) -> None:
    twin = ExperimentPlayer(Simulator(CONFIG), seed=5)
    other = ExperimentPlayer(CONFIG, seed=6)
    lists = player.rank(np.arange(200), 10, noise=0.5, seed=1)
    same = [player.play(u, lists[u]) == twin.play(u, lists[u]) for u in range(200)]
    assert all(same)
    differs = [player.play(u, lists[u]) != other.play(u, lists[u]) for u in range(200)]
    assert any(differs)
    revisits = [player.play(u, lists[u]) != player.play(u, lists[u], visit=1) for u in range(200)]
    assert any(revisits)
    rng1, rng2 = np.random.default_rng(3), np.random.default_rng(3)
    users = np.arange(200)
    assert np.array_equal(player.play_many(users, lists, rng1), twin.play_many(users, lists, rng2))


def test_ids_and_indices_name_the_same_users_and_items(player: ExperimentPlayer) -> None:
    items = [3, 17, 250]
    ids = [player.item_id(i) for i in items]
    assert player.item_indices(ids).tolist() == items
    assert player.user_index(player.user_id(42)) == 42
    assert np.array_equal(player.attraction(42, items), player.attraction("nb-user-0000042", ids))
    assert player.play(42, items, visit=3) == player.play(player.user_id(42), ids, visit=3)
    clicked = player.play(7, list(range(10)))
    assert list(clicked) == sorted(set(clicked)) and all(0 <= p < 10 for p in clicked)
    assert player.play(7, []) == ()
    for bad in ("nb-user-9999999", "someone", -1):
        with pytest.raises(InvalidInput):
            player.user_index(bad)
    with pytest.raises(InvalidInput):
        player.item_indices(["nb-item-000400"])
    with pytest.raises(InvalidInput):
        player.item_indices(["not-an-item"])


def test_click_probability_is_examination_times_attraction(player: ExperimentPlayer) -> None:
    items = np.arange(12)
    a = player.attraction(9, items)
    assert np.all((a > 0) & (a < 1))
    assert np.allclose(player.click_probabilities(9, items), a * examination(12))
    assert examination(3).tolist() == pytest.approx([1.0, 1 / np.log2(3), 0.5])


def test_position_bias_is_visible(player: ExperimentPlayer) -> None:
    """The same items draw fewer clicks lower in the list, by the examination ratio."""
    rng = np.random.default_rng(0)
    users = rng.integers(0, CONFIG.users, size=40_000)
    items = np.argsort(rng.random((users.size, CONFIG.items)), axis=1)[:, :10]
    top = player.play_many(users, items, rng)
    bottom = player.play_many(users, items[:, ::-1], rng)[:, ::-1]
    # Every item's clicks at its own position, then with the list reversed.
    ctr_top, ctr_bottom = top[:, 0].mean(), bottom[:, 0].mean()
    assert ctr_top > 2 * ctr_bottom
    assert ctr_bottom / ctr_top == pytest.approx(1 / np.log2(11), rel=0.15)
    by_rank = top.mean(axis=0)
    assert by_rank[0] > by_rank[4] > by_rank[9]


def test_attraction_follows_the_planted_tastes(player: ExperimentPlayer) -> None:
    w = player.world
    users = np.arange(CONFIG.users)
    favourite, least = w.taste.argmax(axis=1), w.taste.argmin(axis=1)
    # One item of each category, the same for everybody: only the tastes differ.
    first_of = np.array([np.flatnonzero(w.item_cat == c)[0] for c in range(w.taste.shape[1])])
    liked = player.attraction_many(users, first_of[favourite][:, None])[:, 0]
    ignored = player.attraction_many(users, first_of[least][:, None])[:, 0]
    assert np.mean(liked > ignored) > 0.9
    # Among users whose favourite category is the item's, clickier users click it more.
    fans = np.flatnonzero(favourite == w.item_cat[0])
    assert fans.size > 10
    same = player.attraction_many(fans, np.zeros((fans.size, 1), dtype=np.int64))[:, 0]
    assert np.all(np.diff(same[np.argsort(player.clickiness[fans])]) > 0)


def test_a_planted_better_ranker_wins(player: ExperimentPlayer) -> None:
    rng = np.random.default_rng(1)
    users = np.arange(CONFIG.users)
    good = player.rank(users, 10, noise=0.5, seed=1)
    bad = player.rank(users, 10, noise=3.0, seed=2)
    assert player.rank(users[:50], 10, noise=0.5, seed=1).tolist() == good[:50].tolist()
    # A/B: each user sees both lists on separate visits.
    assert player.play_many(users, good, rng).sum() > 1.2 * player.play_many(users, bad, rng).sum()
    # Interleaving: the better ranker's team earns more users' preferences.
    mixed = team_draft_many(good, bad, 10, rng)
    got = credit_many(mixed.teams, player.play_many(users, mixed.items, rng))
    prefs = preference(got.a, got.b)
    wins_good, wins_bad = int((prefs > 0).sum()), int((prefs < 0).sum())
    assert wins_good > wins_bad
    assert float(preference_test(wins_good, wins_bad)) < 1e-3


def test_equal_rankers_tie_under_interleaving(player: ExperimentPlayer) -> None:
    """An A/A interleaving: two draws of the same ranker's quality are preferred equally."""
    rng = np.random.default_rng(2)
    users = np.tile(np.arange(CONFIG.users), 4)
    a = player.rank(users, 10, noise=1.0, seed=3)
    b = player.rank(users, 10, noise=1.0, seed=4)
    mixed = team_draft_many(a, b, 10, rng)
    got = credit_many(mixed.teams, player.play_many(users, mixed.items, rng))
    prefs = preference(got.a, got.b)
    wins_a, wins_b = int((prefs > 0).sum()), int((prefs < 0).sum())
    assert abs(wins_a - wins_b) / np.sqrt(wins_a + wins_b) < 4
