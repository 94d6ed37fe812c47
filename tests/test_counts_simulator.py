"""The play-count generator (``tastebud.simulator.counts``): deterministic, shaped like Last.fm's
hetrec-2011 ``user_artists`` at its defaults, written as a TSV that ``import interactions``
takes, and learnable: personalised models beat popularity on it."""

from __future__ import annotations

import io
import stat
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from tastebud.models import (
    ALS,
    EASE,
    ALSConfig,
    EASEConfig,
    ItemKNN,
    Popularity,
    Recommender,
    TrainingData,
)
from tastebud.simulator import (
    CountsConfig,
    CountsData,
    RowOrder,
    generate_counts,
    write_counts_tsv,
)
from test_cli import run

SMALL = CountsConfig(users=120, items=900, seed=5)


@pytest.fixture(scope="module")
def defaults() -> CountsData:
    return generate_counts(CountsConfig())


@pytest.fixture(scope="module")
def small() -> CountsData:
    return generate_counts(SMALL)


def test_same_seed_same_data_other_seed_other_data(small: CountsData) -> None:
    again = generate_counts(SMALL)
    for name in ("user", "item", "count"):
        assert np.array_equal(getattr(small, name), getattr(again, name))
    other = generate_counts(SMALL.model_copy(update={"seed": 6}))
    assert len(other) != len(small) or not np.array_equal(other.item, small.item)
    a, b = io.BytesIO(), io.BytesIO()
    write_counts_tsv(small, a, order="random")
    write_counts_tsv(again, b, order="random")
    assert a.getvalue() == b.getvalue()


def test_defaults_are_shaped_like_lastfm(defaults: CountsData) -> None:
    s = defaults.stats()
    assert s.users == 1900 and s.catalogue == 18_000
    assert 85_000 <= s.rows <= 100_000
    assert s.items > 15_000  # distinct items actually present
    assert s.items_per_user_max == 50 and s.full_user_share > 0.85
    assert s.single_user_share >= 0.4  # the long tail: most items have one listener
    assert 200 <= s.max_users_per_item <= 1000
    assert 100 <= s.count_median <= 1000 and s.count_max >= 20_000
    assert s.count_mean > 2 * s.count_median  # heavy-tailed counts
    assert int(defaults.count.min()) >= 1
    pairs = defaults.user.astype(np.int64) * 18_000 + defaults.item
    assert len(np.unique(pairs)) == s.rows  # one row per (user, item)
    assert str(s.rows) in s.summary().replace(",", "")


def test_heavy_users_pick_more_of_the_tail(defaults: CountsData) -> None:
    d = defaults
    listeners = np.bincount(d.item, minlength=d.config.items)
    n = np.bincount(d.user, minlength=d.config.users)
    activity = np.bincount(d.user, weights=np.log(d.count)) / n
    niche = np.bincount(d.user, weights=listeners[d.item] == 1) / n
    assert np.corrcoef(activity, niche)[0, 1] > 0.1


def _rows(data: CountsData, order: RowOrder) -> list[list[str]]:
    buf = io.BytesIO()
    assert write_counts_tsv(data, buf, order=order) == len(data)
    lines = buf.getvalue().decode().splitlines()
    assert lines[0] == "user\titem\tcount"
    return [line.split("\t") for line in lines[1:]]


@pytest.mark.parametrize("order", ["count", "item", "random"])
def test_tsv_is_grouped_by_user_and_ordered_within(small: CountsData, order: RowOrder) -> None:
    rows = _rows(small, order)
    assert len(rows) == len(small)
    users = [r[0] for r in rows]
    assert users == sorted(users)  # grouped, users in id order
    assert users[0] == "u00001" and rows[0][1].startswith("a") and len(rows[0][1]) == 6
    by_user: dict[str, list[tuple[str, int]]] = {}
    for u, i, c in rows:
        by_user.setdefault(u, []).append((i, int(c)))
    assert len(by_user) == SMALL.users and all(len(v) <= 50 for v in by_user.values())
    sorted_by = {
        "count": lambda v: [c for _, c in v] == sorted((c for _, c in v), reverse=True),
        "item": lambda v: [i for i, _ in v] == sorted(i for i, _ in v),
    }
    if order in sorted_by:
        assert all(sorted_by[order](v) for v in by_user.values())
    else:  # shuffled: neither order, but the same rows
        assert not all(sorted_by["count"](v) for v in by_user.values())
        assert not all(sorted_by["item"](v) for v in by_user.values())
    assert sorted(map(tuple, rows)) == sorted(map(tuple, _rows(small, "count")))


def test_a_path_is_written_private(small: CountsData, tmp_path: Path) -> None:
    out = tmp_path / "plays.tsv"
    assert write_counts_tsv(small, out) == len(small)
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert out.read_text().count("\n") == len(small) + 1


@pytest.mark.parametrize(
    "bad",
    [
        {"users": 0},
        {"items": 5},
        {"max_per_user": 0},
        {"seed": -1},
        {"full_share": 1.5},
        {"taste": -1.0},
        {"audience_exponent": 1.0},
        {"count_median": 0.0},
        {"communities": 0},
        {"playcounts": 3},  # unknown field
    ],
)
def test_config_refuses_nonsense(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        CountsConfig(**bad)


def test_config_is_frozen() -> None:
    with pytest.raises(ValidationError):
        CountsConfig().users = 3  # type: ignore[misc]


def test_odd_sizes_still_work() -> None:
    tiny = generate_counts(CountsConfig(users=30, items=10, max_per_user=50))
    assert tiny.stats().items_per_user_max == 10  # no more than the catalogue
    assert tiny.stats().users == 30
    one = generate_counts(CountsConfig(users=1, items=10, max_per_user=1))
    assert len(one) == 1


def test_cli_writes_a_file_that_import_interactions_takes(tmp_path: Path) -> None:
    out = tmp_path / "plays.tsv"
    world = ["simulate-counts", "--users", "40", "--items", "300", "--seed", "2"]
    r = run([*world, "--out", str(out), "--order", "item"], tmp_path)
    assert r.returncode == 0, r.stderr
    n = out.read_text().count("\n") - 1
    assert r.stderr.strip().startswith(f"{n:,} rows, 40 users")
    assert len(r.stderr.strip().splitlines()) == 1
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    piped = run([*world, "--out", "-", "--order", "item"], tmp_path)
    assert piped.returncode == 0 and piped.stdout == out.read_text()
    r = run(
        ["import", "interactions", str(out), "--user", "user", "--item", "item"]
        + ["--weight", "count"],
        tmp_path / "data",
    )
    assert r.returncode == 0, r.stderr
    assert f"{n:,} events accepted, 0 duplicates, 0 rejected" in r.stdout
    bad = run(["simulate-counts", "--out", str(out), "--users", "0"], tmp_path)
    assert bad.returncode == 2 and "users" in bad.stderr


def test_personalised_models_beat_popularity_clearly() -> None:
    """A random fifth of each user's items held out: item-item (EASE, item-kNN) and factor
    (ALS) models find the planted structure that popularity cannot."""
    d = generate_counts(CountsConfig(users=600, items=4000, seed=0))
    test = np.random.default_rng(1).random(len(d)) < 0.2
    train = TrainingData.from_arrays(
        d.config.users, d.config.items, d.user[~test], d.item[~test], weight=d.count[~test]
    )
    held: dict[int, set[int]] = {}
    for u, i in zip(d.user[test].tolist(), d.item[test].tolist(), strict=True):
        held.setdefault(u, set()).add(i)
    users = np.array(sorted(held))

    def recall(model: Recommender) -> float:  # type: ignore[type-arg]
        top = model.fit(train).recommend(users, 20, exclude=train.matrix()).item_idx
        return float(
            np.mean(
                [
                    len(held[u] & set(row.tolist())) / min(20, len(held[u]))
                    for u, row in zip(users.tolist(), top, strict=True)
                ]
            )
        )

    base = recall(Popularity())
    scores = {
        "ease": recall(EASE(EASEConfig(l2=300.0))),
        "itemknn": recall(ItemKNN()),
        "als": recall(ALS(ALSConfig(factors=64, regularization=1.0))),
    }
    assert base > 0.02  # popularity is a real baseline here, not a strawman
    for name, score in scores.items():
        assert score > 1.8 * base, (name, score, base)
