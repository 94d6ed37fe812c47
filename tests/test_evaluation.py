"""Evaluation: metrics against hand-computed values, protocols, tuning, slices and the report."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import polars as pl
import pytest
from scipy.sparse import csr_matrix

from tastebud.evaluation import (
    REPORTED,
    Dataset,
    Evaluation,
    Truth,
    bootstrap_ci,
    catalog_metrics,
    evaluate,
    long_tail_items,
    make_split,
    per_user_metrics,
    render_html,
    split_frames,
    tune,
)
from tastebud.models import EASE


def truth(rows: list[list[int]], n_items: int, n_relevant: list[int] | None = None) -> Truth:
    data = np.zeros((len(rows), n_items))
    for r, items in enumerate(rows):
        data[r, items] = 1
    n = np.array(n_relevant if n_relevant is not None else [len(r) for r in rows])
    return Truth(csr_matrix(data), n)


def test_metrics_by_hand() -> None:
    # User 0: test {2, 5}; top-4 [2, 9, 5, 7] -> hits at ranks 1 and 3.
    # User 1: test {4} plus one item unknown to the model (n_relevant 2); top-4 [0, 1, 3, 4].
    recs = np.array([[2, 9, 5, 7], [0, 1, 3, 4]], dtype=np.int32)
    t = truth([[2, 5], [4]], 10, n_relevant=[2, 2])
    m = per_user_metrics(recs, t, [4])
    d = [1 / math.log2(i + 1) for i in range(1, 5)]
    assert m["ndcg@4"][0] == pytest.approx((d[0] + d[2]) / (d[0] + d[1]))
    assert m["ndcg@4"][1] == pytest.approx(d[3] / (d[0] + d[1]))
    assert m["mrr@4"].tolist() == pytest.approx([1.0, 0.25])
    assert m["precision@4"].tolist() == pytest.approx([0.5, 0.25])
    assert m["recall@4"].tolist() == pytest.approx([1.0, 0.5])
    assert m["map@4"][0] == pytest.approx((1 / 1 + 2 / 3) / 2)
    assert m["map@4"][1] == pytest.approx((1 / 4) / 2)
    assert m["hit@4"].tolist() == [1.0, 1.0]
    m1 = per_user_metrics(recs, t, [1])
    assert m1["ndcg@1"].tolist() == [1.0, 0.0]
    assert m1["hit@1"].tolist() == [1.0, 0.0]


def test_padding_never_counts_as_a_hit() -> None:
    recs = np.array([[3, -1, -1]], dtype=np.int32)
    m = per_user_metrics(recs, truth([[0]], 4), [3])
    assert m["ndcg@3"][0] == 0.0 and m["hit@3"][0] == 0.0


def test_catalog_metrics_by_hand() -> None:
    recs = np.array([[0, 1], [0, 2]], dtype=np.int32)
    item_users = np.array([4, 2, 1, 0, 1])
    m = catalog_metrics(recs, 2, item_users, 4)
    assert m["coverage@2"] == pytest.approx(3 / 5)
    expected = np.mean([-math.log2(4 / 4), -math.log2(2 / 4), -math.log2(4 / 4), -math.log2(1 / 4)])
    assert m["novelty@2"] == pytest.approx(expected)
    # 4 items have users; the head is the top 20% of them, rounded: item 0 alone.
    assert long_tail_items(item_users).tolist() == [False, True, True, True, True]
    assert m["longtail@2"] == pytest.approx(2 / 4)


def test_bootstrap_interval_contains_mean_and_shrinks() -> None:
    rng = np.random.default_rng(0)
    small, large = rng.random(50), rng.random(5000)
    lo_s, hi_s = bootstrap_ci(small)
    lo_l, hi_l = bootstrap_ci(large)
    assert lo_s <= small.mean() <= hi_s and lo_l <= large.mean() <= hi_l
    assert hi_l - lo_l < (hi_s - lo_s) / 5
    assert bootstrap_ci(small) == bootstrap_ci(small), "seeded"


def pairs_frame(n_users: int = 80, n_items: int = 40, seed: int = 3) -> pl.DataFrame:
    """Users walk an item cycle (order matters) from random starts, at distinct times."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        start = int(rng.integers(n_items))
        for step in range(int(rng.integers(8, 16))):
            # Irregular gaps, as observed times have (clockwork steps would read as synthetic).
            ts = 1_000_000 * u + 1000 * step + int(rng.integers(0, 500))
            rows.append((f"u{u}", f"i{(start + step) % n_items}", ts, 1.0))
    return pl.DataFrame(rows, schema=["user_key", "item_id", "ts_ms", "weight"], orient="row")


def test_temporal_user_split_follows_design() -> None:
    pairs = pairs_frame()
    train, test = split_frames(pairs, "temporal-user")
    assert train.height + test.height == pairs.height
    for user, grp in pairs.group_by("user_key"):
        n = grp.height
        t = test.filter(pl.col("user_key") == user[0])
        assert t.height == max(1, round(0.2 * n))
        last_train = train.filter(pl.col("user_key") == user[0]).get_column("ts_ms").max()
        assert t.get_column("ts_ms").min() > last_train  # type: ignore[operator]


def test_global_time_split() -> None:
    pairs = pairs_frame()
    train, test = split_frames(pairs, "global-time")
    assert test.get_column("ts_ms").min() >= train.get_column("ts_ms").max()  # type: ignore[operator]
    assert set(test.get_column("user_key")) <= set(train.get_column("user_key"))
    with pytest.raises(ValueError, match="unknown protocol"):
        split_frames(pairs, "random")


def test_make_split_counts_unknown_test_items() -> None:
    train = pl.DataFrame(
        {
            "user_key": ["a", "a", "b"],
            "item_id": ["x", "y", "x"],
            "ts_ms": [1, 2, 3],
            "weight": [1.0, 1.0, 1.0],
        }
    )
    test = pl.DataFrame(
        {
            "user_key": ["a", "a", "c"],
            "item_id": ["z", "x", "x"],
            "ts_ms": [4, 5, 6],
            "weight": [1.0, 1.0, 1.0],
        }
    )
    s = make_split(train, test)
    assert s.test_user_keys == ["a"], "a test user without training history is not scored"
    assert s.truth.n_relevant.tolist() == [2]
    assert s.truth.hits.sum() == 1, "z is unknown to the model: relevant but unhittable"


def test_tuning_uses_validation_and_improves_it() -> None:
    pairs = pairs_frame()
    train, _ = split_frames(pairs, "temporal-user")
    validation = make_split(*split_frames(train, "temporal-user"))
    seen: list[float] = []
    result = tune(EASE, validation, on_trial=lambda p, s: seen.append(s))
    assert len(result.trials) == len(seen) >= 2
    assert result.score == max(seen)
    assert result.score >= result.trials[0][1], "never worse than the defaults"


def test_evaluate_shape_slices_and_sequence_model_wins() -> None:
    pairs = pairs_frame()
    users = pl.DataFrame(
        {
            "user_key": [f"u{u}" for u in range(80)],
            "group": ["a" if u % 2 else "b" for u in range(80)],
        }
    )
    evaluation = evaluate(
        Dataset(pairs, users), ["tastebud_seq", "ease", "popularity"], tuning=False
    )
    result = evaluation.to_json()
    assert result["protocol"] == "temporal-user"
    for name, m in result["models"].items():
        for key in ("ndcg@10", "mrr@10", "precision@10", "recall@20", "coverage@10"):
            assert 0.0 <= m[key] <= 1.0, (name, key)
        lo, hi = m["ci95"]["ndcg@10"]
        assert lo <= m["ndcg@10"] <= hi
        assert isinstance(m["params"], dict)
    models = result["models"]
    assert models["tastebud_seq"]["ndcg@10"] > 1.15 * models["ease"]["ndcg@10"]
    assert result["best_model"] == "tastebud_seq" and result["best_peer"] in {"ease", "popularity"}
    group = result["slices"]["group"]["tastebud_seq"]
    assert set(group["groups"]) == {"a", "b"}
    assert group["groups"]["a"]["users"] + group["groups"]["b"]["users"] == result["test_users"]
    assert "activity" in result["slices"]
    page = render_html(evaluation)
    assert page.count("<svg") >= 5 and "tastebud_seq" in page and "Fairness slices" in page
    assert "<script" not in page, "the report loads nothing and runs nothing"


def test_dataset_without_timestamps_is_flagged_and_deterministic() -> None:
    pairs = pairs_frame().with_columns(pl.lit(0).alias("ts_ms"))
    result = evaluate(Dataset(pairs), ["tastebud_seq"], tuning=False)
    assert result.dataset.has_time is False
    again = evaluate(Dataset(pairs), ["tastebud_seq"], tuning=False)
    a, b = again.models["tastebud_seq"], result.models["tastebud_seq"]
    assert dataclasses.replace(a, fit_seconds=0.0) == dataclasses.replace(b, fit_seconds=0.0)


def test_evaluation_json_keeps_its_keys_and_reads_back() -> None:
    users = pl.DataFrame(
        {
            "user_key": [f"u{u}" for u in range(80)],
            "group": ["a" if u % 2 else "b" for u in range(80)],
        }
    )
    result = evaluate(Dataset(pairs_frame(), users), ["tastebud_seq", "popularity"], tuning=False)
    doc = json.loads(json.dumps(result.to_json()))
    # The document of `tastebud evaluate --json` (and of the bake-off): the same keys as when
    # evaluate returned it as a dict.
    assert list(doc) == [
        "protocol",
        "seed",
        "dataset",
        "test_users",
        "models",
        "tuning",
        "slices",
        "best_model",
        "best_peer",
        "best_ndcg10_over_best_peer",
    ]
    assert list(doc["dataset"]) == ["interactions", "users", "items", "has_time"]
    entry = doc["models"]["popularity"]
    assert list(entry) == [*REPORTED, "ci95", "params", "fit_seconds", "peer"]
    assert all(len(ci) == 2 for ci in entry["ci95"].values())
    assert list(doc["tuning"]["popularity"]) == ["validation_ndcg@10", "trials", "seconds"]
    judged = doc["slices"]["group"]["popularity"]
    assert list(judged) == ["groups", "disparity_ndcg@10", "judged_ndcg@10"]
    assert list(judged["groups"]["a"]) == ["users", "ndcg@10", "recall@20", "hit@10"]
    assert set(judged["judged_ndcg@10"]) == {"ratio", "shrunk", "lower", "best", "worst", "groups"}
    assert Evaluation.from_json(doc) == result


def test_evaluation_json_has_the_ratio_only_with_both_sides() -> None:
    peers_only = evaluate(Dataset(pairs_frame()), ["popularity"], tuning=False).to_json()
    assert "best_peer" in peers_only
    assert "best_model" not in peers_only and "best_ndcg10_over_best_peer" not in peers_only
