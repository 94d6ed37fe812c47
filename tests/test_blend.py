"""Issue 23: what the data carries (weights, real or synthetic time), EASE's exact dual form,
and blends that never lose to their parts."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from pydantic import ValidationError
from scipy.sparse import csr_matrix

from tastebud.evaluation import Dataset, make_split, split_frames
from tastebud.evaluation.blend import BlendPool
from tastebud.evaluation.tuning import search_for, tune
from tastebud.models import (
    ALS,
    EASE,
    ALSConfig,
    EASEConfig,
    FitOptions,
    Hybrid,
    HybridConfig,
    ItemKNN,
    ItemKNNConfig,
    Popularity,
    PopularityConfig,
    RP3Beta,
    RP3BetaConfig,
    SeqLinear,
    SeqLinearConfig,
    TrainingData,
)
from tastebud.models.linear import DUAL_MAX_USERS, ease_matrix
from tastebud.models.signals import is_synthetic_time, transform_weights

ROOT = Path(__file__).resolve().parents[1]


def tastes(n_users: int = 120, n_items: int = 300, seed: int = 0, *, real_time: bool = True):
    """Users with one of six tastes pick items of their taste (by a skewed appeal) and a few at
    random, with play counts that grow with the match; times are irregular and interleaved
    (``real_time``) or one second per line of a file grouped by user."""
    rng = np.random.default_rng(seed)
    taste_of_item = rng.integers(0, 6, n_items)
    appeal = rng.lognormal(0, 1.2, n_items)
    users, items, counts = [], [], []
    for u in range(n_users):
        taste = u % 6
        p = appeal * np.where(taste_of_item == taste, 8.0, 0.3)
        chosen = rng.choice(n_items, size=int(rng.integers(8, 25)), replace=False, p=p / p.sum())
        for i in chosen:
            users.append(u)
            items.append(int(i))
            match = 3.0 if taste_of_item[i] == taste else 0.0
            counts.append(float(np.ceil(rng.lognormal(1.0 + match, 1.0))))
    n = len(users)
    ts = rng.uniform(0, 1e7, n) if real_time else np.arange(n, dtype=float)
    return pl.DataFrame(
        {
            "user_key": [f"u{u}" for u in users],
            "item_id": [f"i{i}" for i in items],
            "ts_ms": (ts * 1000).astype(np.int64),
            "weight": counts,
        }
    )


def validation_of(pairs: pl.DataFrame):
    train, _test = split_frames(pairs, "temporal-user")
    return make_split(*split_frames(train, "temporal-user"))


# -- what the data carries --------------------------------------------------------------------


def test_synthetic_time_is_recognised_and_real_time_is_not() -> None:
    rng = np.random.default_rng(3)
    users = rng.integers(0, 50, 2000)
    assert not is_synthetic_time(users, rng.uniform(0, 1e9, 2000))
    assert not is_synthetic_time(users, np.round(rng.uniform(0, 1e5, 2000)))  # seconds, ties
    grouped = np.sort(users)
    assert is_synthetic_time(grouped, np.arange(2000.0))  # line numbers of a grouped file
    assert is_synthetic_time(users, np.arange(2000.0) * 60)  # any fixed step
    positions = np.concatenate([np.arange(c) for c in np.bincount(grouped)])
    assert is_synthetic_time(grouped, positions.astype(float))  # each user's rank
    steps = np.ones(2000)
    steps[::10] = 2.0  # one line in ten dropped on import: still clockwork
    assert is_synthetic_time(grouped, np.cumsum(steps))
    assert not is_synthetic_time(users[:5], np.arange(5.0))  # too few steps to judge


def test_models_ignore_synthetic_time() -> None:
    pairs = tastes(real_time=False)
    data = validation_of(pairs).train
    assert not data.has_time()
    assert Dataset(pairs).summary().has_time is False
    assert Dataset(tastes(real_time=True)).summary().has_time is True
    seq = SeqLinear(SeqLinearConfig(l2=10.0, alpha=1.0, history_half_life=2.0)).fit(data)
    ease = EASE(EASEConfig(l2=10.0)).fit(data)
    users = np.arange(data.n_users)
    np.testing.assert_allclose(seq.scores(users), ease.scores(users), rtol=1e-4, atol=1e-5)


def test_weightings_rescale_to_a_mean_of_one_and_keep_the_pattern() -> None:
    m = csr_matrix(np.array([[1.0, 40.0, 0.0, 2.0], [0.0, 3.0, 7.0, 0.0]], np.float32))
    for weighting in ("binary", "log", "bm25", "raw"):
        out = transform_weights(m, weighting)
        assert (out.indptr == m.indptr).all() and (out.indices == m.indices).all()
        assert out.data.min() > 0
        assert out.data.mean() == pytest.approx(1.0, rel=1e-5)
    raw, log = transform_weights(m, "raw"), transform_weights(m, "log")
    assert np.argmax(raw.data) == np.argmax(log.data) == 1  # order of counts kept
    assert log.data.max() / log.data.min() < raw.data.max() / raw.data.min()  # tail tamed
    with pytest.raises(ValueError, match="unknown weighting"):
        transform_weights(m, "square")  # type: ignore[arg-type]


def test_weights_reach_every_model_that_can_use_them() -> None:
    data = validation_of(tastes()).train
    users = np.arange(data.n_users)
    for cls, config in (
        (Popularity, PopularityConfig()),
        (RP3Beta, RP3BetaConfig(neighbors=20)),
        (EASE, EASEConfig(l2=5.0)),
        (SeqLinear, SeqLinearConfig(l2=5.0)),
        (ItemKNN, ItemKNNConfig(neighbors=20)),
        (ALS, ALSConfig(factors=8, iterations=5)),
    ):
        plain = cls(config).fit(data, FitOptions(seed=1, n_threads=1)).scores(users)
        weighted = cls(config.model_copy(update={"weighting": "log"}))
        got = weighted.fit(data, FitOptions(seed=1, n_threads=1)).scores(users)
        assert not np.allclose(plain, got), cls.name


def test_als_configs_saved_with_the_binary_flag_still_load() -> None:
    assert ALSConfig(binary=True).weighting == "binary"  # type: ignore[call-arg]
    assert ALSConfig(binary=False).weighting == "raw"  # type: ignore[call-arg]
    assert ALSConfig.model_validate({"binary": False, "factors": 8}).factors == 8


def test_the_search_leaves_out_what_the_data_cannot_reward() -> None:
    timed = validation_of(tastes()).train
    untimed = validation_of(tastes(real_time=False)).train
    start, space = search_for(SeqLinearConfig, timed)
    assert start == {} and "alpha" in space and "log" in space["weighting"]
    start, space = search_for(SeqLinearConfig, untimed)
    assert start["alpha"] == 0.0 and start["history_half_life"] is None
    assert not {"alpha", "history_half_life", "seq_half_life", "future_window"} & set(space)
    flat = TrainingData.from_arrays(3, 3, [0, 1, 2], [0, 1, 2], ts=[5.0, 1.0, 9.5])
    assert search_for(ALSConfig, flat)[1]["weighting"] == ["binary", "bm25"]
    signed = TrainingData.from_arrays(3, 3, [0, 1, 2], [0, 1, 2], weight=[2.0, -1.0, 5.0])
    assert search_for(EASEConfig, signed)[1]["weighting"] == ["binary"]  # log would refuse
    tuned = tune(SeqLinear, validation_of(tastes(real_time=False)))
    assert tuned.config.alpha == 0.0  # type: ignore[attr-defined]


# -- EASE's dual form ---------------------------------------------------------------------------


@pytest.mark.parametrize("weighting", ["binary", "log", "bm25", "raw"])
def test_the_dual_form_is_exactly_ease(weighting: str) -> None:
    data = validation_of(tastes(n_users=60, n_items=300)).train
    assert 2 * data.n_users <= data.n_items
    model = EASE(EASEConfig(l2=20.0, weighting=weighting)).fit(data)  # type: ignore[arg-type]
    assert model._dual is not None and model._b is None
    b = ease_matrix(data.weighted(weighting), 20.0)  # type: ignore[arg-type]
    users = np.arange(data.n_users)
    want = np.asarray(model._history[users] @ b)
    np.testing.assert_allclose(model.scores(users), want, atol=2e-5 * np.abs(want).max())
    a, c = np.array([0, 4, 9]), np.array([4, 1, 9, 30])
    np.testing.assert_allclose(model.item_similarity(a, c), b[np.ix_(a, c)], atol=1e-6)
    w = np.array([1.0, 2.5], np.float32)
    np.testing.assert_allclose(model.item_scores(np.array([3, 7]), w), w @ b[[3, 7]], atol=1e-5)
    again = EASE.from_params(model.config, model.get_params())
    np.testing.assert_array_equal(again.scores(users), model.scores(users))


def test_the_dual_form_holds_every_item_and_forgets_users() -> None:
    data = validation_of(tastes(n_users=60, n_items=300)).train
    model = EASE(EASEConfig(l2=20.0, max_items=50)).fit(data)
    assert len(model._cols) == data.n_items  # no cap: memory grows with the users
    forgotten = np.array([0, 1])
    model.forget_users(forgotten)
    assert model._dual is not None
    assert model._dual.x[forgotten].nnz == 0 and model._history[forgotten].nnz == 0


def test_the_primal_form_is_kept_where_the_dual_would_cost_more() -> None:
    near = validation_of(tastes(n_users=120, n_items=200)).train  # users more than half items
    assert EASE(EASEConfig(l2=20.0)).fit(near)._b is not None
    flat = TrainingData.from_arrays(
        DUAL_MAX_USERS + 1,
        3 * DUAL_MAX_USERS,
        np.arange(DUAL_MAX_USERS + 1),
        np.zeros(DUAL_MAX_USERS + 1),
    )
    model = EASE(EASEConfig(l2=20.0, max_items=5)).fit(flat)
    assert model._dual is None and len(model._cols) == 5  # too many users: primal, capped


def test_one_decomposition_serves_every_ridge_penalty() -> None:
    data = validation_of(tastes(n_users=60, n_items=300)).train
    EASE(EASEConfig(l2=10.0)).fit(data)
    cached = data._cache["dual-eigh-binary"]
    model = EASE(EASEConfig(l2=300.0)).fit(data)
    assert data._cache["dual-eigh-binary"] is cached
    b = ease_matrix(data.weighted("binary"), 300.0)
    users = np.arange(data.n_users)
    want = np.asarray(model._history[users] @ b)
    np.testing.assert_allclose(model.scores(users), want, atol=2e-5 * np.abs(want).max())


# -- blends -------------------------------------------------------------------------------------


def test_a_blend_reduces_exactly_to_each_of_its_parts() -> None:
    data = validation_of(tastes()).train
    users = np.arange(data.n_users)
    parts = {
        "seq": SeqLinearConfig(l2=30.0),
        "als": ALSConfig(factors=8, iterations=5),
        "knn": ItemKNNConfig(neighbors=30),
        "rp3": RP3BetaConfig(neighbors=30),
    }
    for key, cls in HybridConfig.PARTS.items():
        weights = {k: 1.0 if k == key else 0.0 for k in parts}
        blend = Hybrid(HybridConfig.blend(parts, weights)).fit(data, FitOptions(seed=2))
        alone = cls(parts[key]).fit(data, FitOptions(seed=2))
        np.testing.assert_array_equal(
            blend.recommend(users, 10, exclude=data.matrix()).item_idx,
            alone.recommend(users, 10, exclude=data.matrix()).item_idx,
        )


def test_hybrid_configs_need_a_weight_and_old_flat_ones_load() -> None:
    with pytest.raises(ValidationError, match="at least one of w_seq"):
        HybridConfig(w_seq=0.0, w_als=0.0, w_knn=0.0)
    old = HybridConfig.model_validate({"l2": 300.0, "als_factors": 64, "w_knn": 0.2})
    assert old.seq.l2 == 300.0 and old.als.factors == 64 and old.als.alpha == 5.0
    assert old.knn.neighbors == 200 and old.w_knn == 0.2
    assert HybridConfig.model_validate(old.model_dump(mode="json")) == old


def test_the_blend_pool_matches_the_fitted_blend() -> None:
    validation = validation_of(tastes(seed=9))
    parts = [
        SeqLinear(SeqLinearConfig(l2=30.0)).fit(validation.train),
        ALS(ALSConfig(factors=8, iterations=5)).fit(validation.train, FitOptions(seed=0)),
        ItemKNN(ItemKNNConfig(neighbors=30)).fit(validation.train),
        RP3Beta(RP3BetaConfig(neighbors=30)).fit(validation.train),
    ]
    pool = BlendPool.build(parts, validation)
    for weights in ([1.0, 0.0, 0.0, 0.0], [1.0, 0.5, 0.2, 0.0], [0.2, 1.0, 0.0, 0.7]):
        assert pool.score(weights) == pytest.approx(pool.exact(weights), abs=1e-9)


def test_a_blend_over_a_catalogue_smaller_than_a_list_is_tuned() -> None:
    rng = np.random.default_rng(4)
    rows = [
        (f"u{u}", f"i{i}", int(rng.integers(0, 10**9)), 1.0)
        for u in range(40)
        for i in rng.choice(6, size=4, replace=False)
    ]
    pairs = pl.DataFrame(rows, schema=["user_key", "item_id", "ts_ms", "weight"], orient="row")
    tuned = tune(Hybrid, validation_of(pairs))
    assert 0.0 <= tuned.score <= 1.0


# -- the documented example -----------------------------------------------------------------------


def test_the_counts_example_of_the_docs_runs_as_written(tmp_path: Path) -> None:
    text = (ROOT / "docs" / "evaluation.md").read_text()
    section = text.split("### Play counts without time", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, re.S)
    assert block is not None
    lines = [line for line in block.group(1).splitlines() if line.strip()]
    assert [line.split()[:2] for line in lines] == [
        ["tastebud", "simulate-counts"],
        ["tastebud", "import"],
        ["tastebud", "evaluate"],
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASTEBUD_")}
    env["TASTEBUD_DATA_DIR"] = str(tmp_path / "data")
    outputs = []
    for line in lines:
        args = shlex.split(line)[1:]
        done = subprocess.run(
            [sys.executable, "-m", "tastebud.cli", *args],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert done.returncode == 0, (line, done.stdout, done.stderr)
        outputs.append(done.stdout + done.stderr)
    assert "(no timestamps)" in outputs[2], outputs[2]
    report = json.loads((tmp_path / "counts.json").read_text())
    assert report["dataset"]["has_time"] is False
    val = {n: t["validation_ndcg@10"] for n, t in report["tuning"].items()}
    assert report["best_model"] == max(val, key=val.__getitem__)
    parts = ("tastebud_seq", "als", "itemknn", "rp3beta")
    assert val["tastebud_hybrid"] >= max(val[p] for p in parts)  # never below a part
    assert report["models"]["tastebud_seq"]["params"]["alpha"] == 0.0  # no time to earn it
