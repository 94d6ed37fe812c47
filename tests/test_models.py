"""The recommender contract (STYLE.md rule 7): every registered model passes the same suite."""

from __future__ import annotations

import json
from collections.abc import Iterator
from types import UnionType
from typing import Annotated, Any, ClassVar, Union, get_args, get_origin

import annotated_types as at
import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, Field, ValidationError
from pydantic.fields import FieldInfo

from tastebud.errors import InvalidInput
from tastebud.evaluation import Dataset, evaluate
from tastebud.evaluation.tuning import checked_space, max_trials, tune
from tastebud.models import (
    ALS,
    BPR,
    EASE,
    MODELS,
    ALSConfig,
    BPRConfig,
    EASEConfig,
    FitOptions,
    Hybrid,
    HybridConfig,
    ItemKNN,
    ItemKNNConfig,
    ModelConfig,
    NotFitted,
    Popularity,
    PopularityConfig,
    Recommender,
    RP3Beta,
    RP3BetaConfig,
    SeqLinear,
    SeqLinearConfig,
    TrainingData,
    model_class,
    top_k,
)
from tastebud.models.predictor_config import PredictorConfig
from test_blend import tastes, validation_of


def checkerboard(n_users: int = 40, n_items: int = 20, seed: int = 0) -> tuple[TrainingData, Any]:
    """implicit's checkerboard: users of one half like the items of the same half; one item per
    user is withheld and must come first (it is the only unseen item of the user's half)."""
    rng = np.random.default_rng(seed)
    users, items, withheld = [], [], {}
    half = n_items // 2
    for u in range(n_users):
        block = range(0, half) if u % 2 == 0 else range(half, n_items)
        hide = int(rng.choice(list(block)))
        withheld[u] = hide
        for i in block:
            if i != hide:
                users.append(u)
                items.append(i)
    ts = np.arange(len(users), dtype=float)
    return TrainingData.from_arrays(n_users, n_items, users, items, ts=ts), withheld


def sequences(n_users: int = 60, n_items: int = 30, seed: int = 1) -> TrainingData:
    """Users walk a fixed item cycle from random starting points: order carries the signal."""
    rng = np.random.default_rng(seed)
    users, items, ts = [], [], []
    for u in range(n_users):
        start = int(rng.integers(n_items))
        for step in range(int(rng.integers(6, 12))):
            users.append(u)
            items.append((start + step) % n_items)
            ts.append(1000.0 * u + step + 0.5 * rng.random())  # irregular, as observed
    return TrainingData.from_arrays(n_users, n_items, users, items, ts=ts)


class RecommenderContract:
    """Subclass per model and set ``model_class`` and ``config``."""

    model_class: ClassVar[type[Recommender[Any]]]
    config: ClassVar[ModelConfig]
    checkerboard_first: ClassVar[bool] = True
    """Whether the model can solve the checkerboard (popularity cannot: it is not personal)."""

    def fitted(self, data: TrainingData | None = None) -> Recommender[Any]:
        data = data if data is not None else checkerboard()[0]
        return self.model_class(self.config).fit(data, FitOptions(seed=7, n_threads=1))

    def test_unfitted_refuses(self) -> None:
        model = self.model_class(self.config)
        assert not model.is_fitted()
        with pytest.raises(NotFitted):
            model.recommend(np.array([0]), 3)

    def test_respects_k_and_excludes_seen(self) -> None:
        data, _ = checkerboard()
        model = self.fitted(data)
        assert model.is_fitted()
        seen = data.matrix()
        for k in (1, 5, 15):
            rec = model.recommend(np.arange(data.n_users), k, exclude=seen)
            assert rec.item_idx.shape == (data.n_users, k)
            assert rec.scores.shape == (data.n_users, k)
            for u in range(data.n_users):
                got = [i for i in rec.item_idx[u] if i >= 0]
                assert len(set(got)) == len(got)
                assert not set(got) & set(seen[u].indices.tolist())
                s = rec.scores[u][: len(got)]
                assert np.all(np.diff(s) <= 1e-6), "scores must be sorted, best first"

    def test_checkerboard_withheld_item_first(self) -> None:
        data, withheld = checkerboard()
        rec = self.fitted(data).recommend(np.arange(data.n_users), 1, exclude=data.matrix())
        hits = sum(int(rec.item_idx[u, 0] == withheld[u]) for u in withheld)
        if self.checkerboard_first:
            assert hits >= 0.9 * len(withheld)
        else:  # not personalised: the first item is the most popular unseen one
            counts = np.bincount(data.item, minlength=data.n_items)
            for u in withheld:
                unseen = np.setdiff1d(np.arange(data.n_items), data.matrix()[u].indices)
                assert counts[rec.item_idx[u, 0]] == counts[unseen].max()

    def test_save_load_round_trip_identical(self) -> None:
        data, _ = checkerboard()
        model = self.fitted(data)
        params = model.get_params()
        # What the artifact store does: arrays only, no objects, JSON config.
        for name, arr in params.items():
            assert isinstance(arr, np.ndarray), name
            assert arr.dtype != object, name
        config = json.loads(json.dumps(model.config.model_dump(mode="json")))
        again = self.model_class.from_params(config, params)
        users = np.arange(data.n_users)
        a = model.recommend(users, 5, exclude=data.matrix())
        b = again.recommend(users, 5, exclude=data.matrix())
        np.testing.assert_array_equal(a.item_idx, b.item_idx)
        np.testing.assert_allclose(a.scores, b.scores, rtol=1e-6)

    def test_config_json_round_trip(self) -> None:
        dumped = json.dumps(self.config.model_dump(mode="json"))
        assert self.model_class.config_class(**json.loads(dumped)) == self.config
        with pytest.raises(ValueError):
            self.model_class.config_class(no_such_parameter=1)

    def test_search_space_values_are_valid_configs(self) -> None:
        for name, values in self.model_class.config_class.search_space().items():
            for v in values:
                self.model_class.config_class(**{name: v})

    def test_deterministic_under_seed(self) -> None:
        data = sequences()
        users = np.arange(data.n_users)
        a = self.fitted(data).recommend(users, 5, exclude=data.matrix())
        b = self.fitted(data).recommend(users, 5, exclude=data.matrix())
        np.testing.assert_array_equal(a.item_idx, b.item_idx)
        np.testing.assert_allclose(a.scores, b.scores, rtol=1e-5)

    def test_unknown_and_empty_users(self) -> None:
        data, _ = checkerboard()
        model = self.fitted(data)
        rec = model.recommend(np.array([-1, data.n_users + 5]), 3)
        counts = np.bincount(data.item, minlength=data.n_items)
        third = np.sort(counts)[-3]
        for row in rec.item_idx:  # unknown users get the most popular items
            assert (counts[row] >= third).all() and len(set(row.tolist())) == 3
        assert model.recommend(np.array([], dtype=np.int64), 3).item_idx.shape == (0, 3)

    def test_item_scores_relate_items_of_the_same_half(self) -> None:
        data, _ = checkerboard()
        model = self.fitted(data)
        with pytest.raises(NotFitted):
            self.model_class(self.config).item_scores(np.array([0]))
        half = data.n_items // 2
        s = model.item_scores(np.array([0, 1, 2]))
        assert s.shape == (data.n_items,) and s.dtype == np.float32
        assert np.all(model.item_scores(np.array([], dtype=np.int64)) == 0)
        assert np.all(model.item_scores(np.array([-1, data.n_items + 5])) == 0)  # unknown ids
        if self.checkerboard_first:
            # A session in the first half ranks first-half items above second-half ones.
            others = np.setdiff1d(np.arange(half), [0, 1, 2])
            assert np.median(s[others]) > np.median(s[half:])
            w = model.item_scores(np.array([0, 1, 2]), np.array([2.0, 2.0, 2.0]))
            # Uniform weights change the scale (linear models) but never the order.
            assert np.corrcoef(w[others], s[others])[0, 1] > 0.999

    def test_item_similarity_matches_item_scores(self) -> None:
        data, _ = checkerboard()
        model = self.fitted(data)
        anchors, targets = np.array([0, 5, 13, -1]), np.array([1, 2, 15, 19, 99])
        sim = model.item_similarity(anchors, targets)
        assert sim.shape == (4, 5) and sim.dtype == np.float32
        assert np.all(sim[3] == 0) and np.all(sim[:, 4] == 0)  # unknown ids
        for i, a in enumerate(anchors[:3]):
            full = model.item_scores(np.array([a]))[targets[:4]]
            if isinstance(model, Hybrid):  # parts rescaled: the best target agrees
                assert np.argmax(sim[i, :4]) == np.argmax(full)
            else:
                np.testing.assert_allclose(sim[i, :4], full, rtol=1e-4, atol=1e-5)

    def test_forget_users_leaves_no_per_user_trace(self) -> None:
        data, _ = checkerboard()
        model = self.fitted(data)
        before = model.get_params()
        model.forget_users(np.array([0, 3]))
        after = model.get_params()
        assert set(before) == set(after)
        # The forgotten users score like a user with nothing in their history...
        s = model.scores(np.array([0, 3, 1]))
        if self.checkerboard_first:
            assert np.allclose(np.nan_to_num(s[0], neginf=0), np.nan_to_num(s[1], neginf=0))
            assert not np.allclose(np.nan_to_num(s[0], neginf=0), np.nan_to_num(s[2], neginf=0))
        # ...and the round trip keeps it that way.
        again = self.model_class.from_params(model.config.model_dump(mode="json"), after)
        np.testing.assert_allclose(again.scores(np.array([0])), model.scores(np.array([0])))

    def test_update_folds_in_new_users(self) -> None:
        if not self.model_class.supports_update:
            with pytest.raises(NotImplementedError):
                self.fitted().update(checkerboard()[0], np.array([0]))
            return
        data, _ = checkerboard()
        model = self.fitted(data)
        # A new user (index n_users) with the first half's items 0..3 gets first-half items.
        grown = TrainingData.from_arrays(
            data.n_users + 1,
            data.n_items,
            np.r_[data.user, [data.n_users] * 4],
            np.r_[data.item, [0, 1, 2, 3]],
            ts=np.r_[data.ts, [1e6, 1e6 + 1, 1e6 + 2, 1e6 + 3]],
        )
        model.update(grown, np.array([data.n_users]))
        rec = model.recommend(np.array([data.n_users]), 3, exclude=grown.matrix())
        got = [i for i in rec.item_idx[0].tolist() if i >= 0]
        assert got and not set(got) & {0, 1, 2, 3}
        if self.checkerboard_first:
            assert all(i < data.n_items // 2 for i in got), got


class TestPopularity(RecommenderContract):
    model_class = Popularity
    config = PopularityConfig()
    checkerboard_first = False

    def test_group_popularity(self) -> None:
        # Group 0 likes item 0, group 1 likes item 1; groups have enough users.
        users = list(range(40))
        items = [0 if u < 20 else 1 for u in users]
        groups = np.array([0] * 20 + [1] * 20)
        data = TrainingData.from_arrays(40, 3, users, items, user_groups=groups)
        model = Popularity(PopularityConfig(by="group")).fit(data)
        rec = model.recommend(np.array([0, 39]), 1)
        assert rec.item_idx[:, 0].tolist() == [0, 1]
        small = Popularity(PopularityConfig(by="group", min_group_users=50)).fit(data)
        firsts = small.recommend(np.array([0, 39]), 1).item_idx[:, 0]
        assert firsts[0] == firsts[1], "tiny groups fall back to the global list"

    def test_context_popularity(self) -> None:
        # 30 users: on context 0 (say mobile) item 0 is popular, on context 1 item 1; users
        # 0..14 use mostly context 0, users 15..29 mostly context 1.
        users, items, ctx = [], [], []
        for u in range(30):
            main = 0 if u < 15 else 1
            for c, item in ((main, main), (main, main), (1 - main, 2)):
                users.append(u)
                items.append(item)
                ctx.append(c)
        data = TrainingData.from_arrays(30, 3, users, items, context=ctx)
        model = Popularity(PopularityConfig(by="context", min_group_users=10)).fit(data)
        top = int(np.argmax(np.bincount(items)))  # the global list's first item
        assert model.for_groups(np.array([0, 1, -1]), 1).item_idx[:, 0].tolist() == [0, 1, top]
        assert model.recommend(np.array([0, 29]), 1).item_idx[:, 0].tolist() == [0, 1]
        again = Popularity.from_params(model.config, model.get_params())
        assert again.for_groups(np.array([1]), 3).item_idx.tolist() == [[1, 2, 0]]
        strict = Popularity(PopularityConfig(by="context", min_group_users=31)).fit(data)
        assert strict.for_groups(np.array([1]), 1).item_idx[0, 0] == top, "too few users: global"

    def test_recency_weighting(self) -> None:
        # Item 0: many old interactions; item 1: a few recent ones.
        users = list(range(12))
        items = [0] * 8 + [1] * 4
        ts = [0.0] * 8 + [100 * 86_400.0] * 4
        data = TrainingData.from_arrays(12, 2, users, items, ts=ts)
        assert Popularity().fit(data).recommend(np.array([-1]), 1).item_idx[0, 0] == 0
        recent = Popularity(PopularityConfig(half_life_days=7)).fit(data)
        assert recent.recommend(np.array([0]), 1).item_idx[0, 0] == 1


class TestItemKNN(RecommenderContract):
    model_class = ItemKNN
    config = ItemKNNConfig(neighbors=10)


class TestALS(RecommenderContract):
    model_class = ALS
    config = ALSConfig(factors=4, iterations=15, regularization=1.0, alpha=1.0)


class TestBPR(RecommenderContract):
    model_class = BPR
    config = BPRConfig(factors=8, iterations=200, learning_rate=0.05)


class TestRP3Beta(RecommenderContract):
    model_class = RP3Beta
    config = RP3BetaConfig(neighbors=20, beta=0.3)

    def test_beta_penalises_popular_items(self) -> None:
        # Item 0 is everyone's; items 1..5 each go with it for a few users.
        users = [u for u in range(30) for _ in (0, 1)]
        items = [i for u in range(30) for i in (0, 1 + u % 5)]
        data = TrainingData.from_arrays(31, 6, users + [30], items + [1])
        plain = RP3Beta(RP3BetaConfig(beta=0.0)).fit(data).scores(np.array([30]))[0]
        penalised = RP3Beta(RP3BetaConfig(beta=1.0)).fit(data).scores(np.array([30]))[0]
        assert plain[0] > 0 and penalised[0] / plain[0] < 0.1  # item 0: 31 users


class TestEASE(RecommenderContract):
    model_class = EASE
    config = EASEConfig(l2=1.0)

    def test_item_cap(self) -> None:
        data, _ = checkerboard()
        model = EASE(EASEConfig(l2=1.0, max_items=6)).fit(data)
        rec = model.recommend(np.arange(data.n_users), 10, exclude=data.matrix())
        counts = np.bincount(data.item, minlength=data.n_items)
        allowed = set(np.argsort(-counts, kind="stable")[:6].tolist())
        assert set(rec.item_idx[rec.item_idx >= 0].tolist()) <= allowed


class TestSeqLinear(RecommenderContract):
    model_class = SeqLinear
    config = SeqLinearConfig(l2=1.0)

    def test_learns_what_comes_next(self) -> None:
        # On cyclic walks the next item is the one after the user's last; EASE, which ignores
        # order, cannot tell the next item from the previous one.
        data = sequences()
        seq = SeqLinear(SeqLinearConfig(l2=1.0)).fit(data)
        order = data.sequence_order()
        last = {int(u): int(i) for u, i in zip(data.user[order], data.item[order], strict=True)}
        users = np.array(sorted(last))
        rec = seq.recommend(users, 1, exclude=data.matrix()).item_idx[:, 0]
        expected = np.array([(last[u] + 1) % data.n_items for u in users])
        assert (rec == expected).mean() > 0.9

    def test_without_timestamps_it_is_ease(self) -> None:
        data, _ = checkerboard()
        flat = TrainingData.from_arrays(data.n_users, data.n_items, data.user, data.item)
        seq = SeqLinear(SeqLinearConfig(l2=5.0)).fit(flat)
        ease = EASE(EASEConfig(l2=5.0)).fit(flat)
        users = np.arange(flat.n_users)
        np.testing.assert_allclose(seq._scores(users), ease._scores(users), rtol=1e-5, atol=1e-6)


class TestHybrid(RecommenderContract):
    model_class = Hybrid
    config = HybridConfig(
        seq=SeqLinearConfig(l2=1.0),
        w_als=0.2,
        als=ALSConfig(factors=4, regularization=1.0, alpha=5.0),
        w_knn=0.2,
        knn=ItemKNNConfig(neighbors=10),
    )

    def test_zero_weights_switch_components_off(self) -> None:
        data = sequences()
        only_seq = Hybrid(HybridConfig(seq=SeqLinearConfig(l2=1.0), w_als=0.0, w_knn=0.0)).fit(data)
        assert [name for name, _, _ in only_seq._parts] == ["seq"]
        assert not any(k.startswith(("als.", "knn.")) for k in only_seq.get_params())
        seq = SeqLinear(SeqLinearConfig(l2=1.0)).fit(data)
        users = np.arange(data.n_users)
        a = only_seq.recommend(users, 5, exclude=data.matrix()).item_idx
        b = seq.recommend(users, 5, exclude=data.matrix()).item_idx
        np.testing.assert_array_equal(a, b)


# -- never lose to a part (issue 23) ------------------------------------------------------------


@pytest.mark.parametrize("real_time", [True, False])
def test_the_tuned_blend_never_scores_below_its_best_part(real_time: bool) -> None:
    validation = validation_of(tastes(real_time=real_time, seed=5))
    parts = {cls.name: tune(cls, validation) for cls in HybridConfig.PARTS.values()}
    trials: list[tuple[dict[str, object], float]] = []
    blend = tune(Hybrid, validation, parts=parts, on_trial=lambda p, s: trials.append((p, s)))
    assert blend.score >= max(r.score for r in parts.values())
    assert trials and all(k.startswith("w_") for p, _ in trials for k in p)  # parts reused
    assert len(trials) <= max_trials(Hybrid, reused=frozenset(parts))
    config = blend.config
    assert isinstance(config, HybridConfig)
    for key, cls in HybridConfig.PARTS.items():  # each part as tuned alone
        assert config.part(key) == parts[cls.name].config
    again = tune(Hybrid, validation)  # tuning its parts itself gives the same blend
    assert again.config == config and again.score == pytest.approx(blend.score)
    assert {k.split(".")[0] for p, _ in again.trials for k in p} >= set(HybridConfig.PARTS)


def test_the_chosen_model_is_the_best_on_validation_peers_included() -> None:
    # Everyone picks by popularity alone: nothing personal to learn, and popularity (a peer)
    # is best on validation.
    rng = np.random.default_rng(11)
    appeal = rng.lognormal(0, 1.5, 1000)
    rows = []
    for u in range(150):
        for i in rng.choice(1000, size=10, replace=False, p=appeal / appeal.sum()):
            rows.append((f"u{u}", f"i{i}", int(rng.integers(0, 10**9)), 1.0))
    pairs = pl.DataFrame(rows, schema=["user_key", "item_id", "ts_ms", "weight"], orient="row")
    result = evaluate(Dataset(pairs), ["tastebud_seq", "popularity", "ease"])
    val = {n: t.validation_ndcg10 or 0.0 for n, t in result.tuning.items()}
    best_peer = max(("popularity", "ease"), key=val.__getitem__)
    assert val[best_peer] > val["tastebud_seq"], val  # the premise: a peer is best
    assert result.best_model is not None
    assert val[result.best_model] >= val[best_peer]
    assert result.models[result.best_model].peer


def test_every_registered_model_has_a_contract_suite() -> None:
    covered = {c.model_class for c in RecommenderContract.__subclasses__()}
    missing = [name for name, cls in MODELS.items() if cls not in covered]
    assert not missing, f"models without a contract test class: {missing}"


def test_model_class_lookup() -> None:
    assert model_class("ease") is EASE
    with pytest.raises(KeyError, match="known: tastebud_seq"):
        model_class("nope")


def test_peer_names_are_kept() -> None:
    peers = {n for n, c in MODELS.items() if c.peer}
    assert peers == {"popularity", "itemknn", "rp3beta", "als", "bpr", "ease"}
    assert all(n.startswith("tastebud_") for n, c in MODELS.items() if not c.peer)


def test_top_k_ties_and_padding() -> None:
    scores = np.array([[1.0, 3.0, 3.0, 0.5]], dtype=np.float32)
    rec = top_k(scores, 3)
    assert rec.item_idx.tolist() == [[1, 2, 0]], "ties go to the lower index"
    from scipy.sparse import csr_matrix

    ex = csr_matrix(np.array([[1, 1, 1, 0]]))
    rec = top_k(scores, 3, ex)
    assert rec.item_idx.tolist() == [[3, -1, -1]]
    assert np.isneginf(rec.scores[0, 1:]).all()


@settings(max_examples=60, deadline=None)
@given(
    n_rows=st.integers(1, 6),
    n_items=st.integers(1, 300),
    k=st.integers(1, 25),
    seed=st.integers(0, 2**16),
)
def test_top_k_matches_a_full_sort(n_rows: int, n_items: int, k: int, seed: int) -> None:
    from scipy.sparse import random as sparse_random

    rng = np.random.default_rng(seed)
    scores = np.round(rng.standard_normal((n_rows, n_items)), 1).astype(np.float32)  # ties
    scores[rng.random(scores.shape) < 0.05] = -np.inf
    exclude = sparse_random(n_rows, n_items, density=0.2, format="csr", random_state=seed)
    rec = top_k(scores, k, exclude)
    masked = scores.copy()
    masked[exclude.nonzero()] = -np.inf
    for r in range(n_rows):
        ranked = sorted(range(n_items), key=lambda j: (-masked[r, j], j))
        want = [j for j in ranked if np.isfinite(masked[r, j])][:k]
        assert rec.item_idx[r].tolist() == want + [-1] * (k - len(want))


# -- configs refuse nonsense (issue 16, point 11) ----------------------------------------------
_BOUNDS = (at.Ge, at.Gt, at.Le, at.Lt)


Found = tuple[str, type, tuple[Any, ...]]


def _numbers(tp: Any, bounds: tuple[Any, ...] = ()) -> Iterator[Found]:
    """``(where, int or float, bounds)`` for every number a field's type holds: itself (also
    inside ``Optional``), or a tuple's, list's or dict's values (``where``: ``""``, ``"[]"``)."""
    origin, args = get_origin(tp), get_args(tp)
    if origin is Annotated:
        inner: list[Any] = []
        for m in args[1:]:
            inner += m.metadata if isinstance(m, FieldInfo) else [m]
        yield from _numbers(args[0], bounds + tuple(m for m in inner if isinstance(m, _BOUNDS)))
    elif origin in (Union, UnionType):
        for arg in args:
            yield from _numbers(arg, bounds)
    elif origin in (tuple, list, dict):
        for where, base, b in _numbers(args[-1] if origin is dict else args[0]):
            yield "[]" + where, base, b
    elif tp in (int, float):
        yield "", tp, bounds


def numeric_fields(model: type[BaseModel]) -> dict[str, Found]:
    """Every field of ``model`` that holds a number, with where, its type and its bounds
    (``Field(ge=...)`` on the field or inside the type); booleans are not numbers."""
    out = {}
    for name, info in model.model_fields.items():
        own = tuple(m for m in info.metadata if isinstance(m, _BOUNDS))
        found = list(_numbers(info.annotation, own))
        if found:
            out[name] = found[0]
    return out


def unbounded_fields(model: type[BaseModel]) -> list[str]:
    """Numeric fields with neither a bound nor a field validator of their own."""
    validated = {
        f for d in model.__pydantic_decorators__.field_validators.values() for f in d.info.fields
    }
    return [
        name
        for name, (_, _, bounds) in numeric_fields(model).items()
        if not bounds and name not in validated
    ]


def _just_outside(bound: Any, step: float) -> float:
    """The value ``step`` beyond an inclusive bound, or an exclusive bound itself."""
    name = type(bound).__name__.lower()  # ge, gt, le or lt: the bound's attribute
    edge = float(getattr(bound, name))
    return edge - step if name == "ge" else edge + step if name == "le" else edge


def out_of_bounds(model: type[BaseModel]) -> list[tuple[str, Any]]:
    """``(field, value)`` pairs, one per bound of each numeric field, just outside the bound
    (e.g. 0 for ``ge=1``, 0 for ``gt=0``), in the field's shape (``(0,)`` for a tuple)."""
    out: list[tuple[str, Any]] = []
    for name, (where, base, bounds) in numeric_fields(model).items():
        for b in bounds:
            value = _just_outside(b, 1 if base is int else 0.5)
            bad: Any = int(value) if base is int else value
            if where:
                shape = model.model_fields[name].annotation
                bad = {"k": bad} if get_origin(shape) is dict else (bad,)
            out.append((name, bad))
    return out


MODEL_CONFIGS: list[type[BaseModel]] = [
    *(cls.config_class for cls in MODELS.values()),
    PredictorConfig,
]


@pytest.mark.parametrize("config", MODEL_CONFIGS, ids=lambda c: c.__name__)
def test_every_numeric_config_field_is_bounded(config: type[BaseModel]) -> None:
    assert numeric_fields(config), "the field detector found no numbers"
    assert not unbounded_fields(config), "add Field(ge=..., gt=..., le=...) to these"
    assert config.model_config.get("frozen") and config.model_config.get("extra") == "forbid"
    default = config()  # the defaults are within the bounds
    with pytest.raises(ValidationError):
        setattr(default, next(iter(config.model_fields)), None)  # frozen
    with pytest.raises(ValidationError, match="no_such_parameter"):
        config(no_such_parameter=1)


@pytest.mark.parametrize(
    ("config", "field", "bad"),
    [(c, f, v) for c in MODEL_CONFIGS for f, v in out_of_bounds(c)],
    ids=lambda x: x.__name__ if isinstance(x, type) else repr(x),
)
def test_a_value_out_of_bounds_is_refused_naming_the_field(
    config: type[BaseModel], field: str, bad: Any
) -> None:
    with pytest.raises(ValidationError) as info:
        config(**{field: bad})
    assert {e["loc"][0] for e in info.value.errors()} == {field}
    message = InvalidInput.from_validation(info.value).message
    assert message.startswith(f"invalid {config.__name__}: {field}")


def test_nonsense_values_named_in_the_issue_are_refused() -> None:
    with pytest.raises(ValidationError, match="neighbors"):
        ItemKNNConfig(neighbors=0)
    with pytest.raises(ValidationError, match="factors"):
        ALSConfig(factors=0)
    with pytest.raises(ValidationError, match="learning_rate"):
        BPRConfig(learning_rate=0.0)
    with pytest.raises(ValidationError, match="alpha"):
        ALSConfig(alpha=0.0)  # implicit multiplies the matrix by it: nothing would be left
    with pytest.raises(ValidationError, match="half_life"):
        ItemKNNConfig(half_life=-3.0)
    with pytest.raises(ValidationError, match="leaves"):
        PredictorConfig(leaves=(1,))
    with pytest.raises(ValueError, match="seed"):
        FitOptions(seed=-1)
    # Zero is meaningful where it switches something off, and None where it means "no decay".
    assert HybridConfig(w_als=0.0, w_knn=0.0, seq=SeqLinearConfig(alpha=0.0)).w_als == 0.0
    assert SeqLinearConfig(history_half_life=None, alpha=0.0).alpha == 0.0


def test_the_bound_detector_catches_a_new_unbounded_field() -> None:
    class Loose(ModelConfig):
        count: int = 3
        share: float | None = None
        bounded: int = Field(default=1, ge=1)
        levels: tuple[int, ...] = (2,)
        flag: bool = True

    assert unbounded_fields(Loose) == ["count", "share", "levels"]
    assert out_of_bounds(Loose) == [("bounded", 0)]


def test_search_spaces_stay_within_the_bounds() -> None:
    for cls in MODELS.values():
        assert checked_space(cls.config_class) == cls.config_class.search_space()

    class Wrong(ModelConfig):
        neighbors: int = Field(default=10, ge=1)

        @classmethod
        def search_space(cls) -> dict[str, list[Any]]:
            return {"neighbors": [10, 0]}

    class WrongModel(Popularity):
        config_class = Wrong  # type: ignore[assignment]

    with pytest.raises(ValidationError, match="neighbors"):
        checked_space(Wrong)
    with pytest.raises(ValidationError, match="neighbors"):  # before any trial runs
        tune(WrongModel, None)  # type: ignore[arg-type]


def test_a_bad_value_becomes_a_clear_error_naming_the_field() -> None:
    with pytest.raises(ValidationError) as info:
        ALSConfig(factors=0, learning_rate=0.1)  # type: ignore[call-arg]
    error = InvalidInput.from_validation(info.value)
    assert error.message == (
        "invalid ALSConfig: factors: Input should be greater than or equal to 1 (got 0); "
        "learning_rate: Extra inputs are not permitted"
    )
    assert [d["field"] for d in error.details] == ["factors", "learning_rate"]
