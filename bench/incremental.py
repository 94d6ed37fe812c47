"""Incremental training: fold 10 k changed users into yesterday's ALS against a full retrain.

    python bench/incremental.py [--users 100000] [--items 20000] [--changed 10000] [--repeat 3]
    python bench/incremental.py --users 10000 --items 2000 --changed 1000    # quick run

Data (synthetic, seeded, generated with NumPy as in ``bench/scale.py``): 50 taste categories;
item popularity Zipf(0.9); each user has two favourite categories, and each of their events is,
with probability 1/2, an item drawn by global popularity, otherwise an item of one of their
favourite categories drawn by popularity within it. Activity is skewed (log-normal events per
user, mean ``--per-user``). Timeline, in days from an origin: T1 = day 83, T2 = day 90.

- Every user but the new ones has events uniformly in [0, T1] (the base data).
- ``--changed`` users (``--new-share`` of them new, the rest existing users) have 2 + Poisson(10)
  events (new users: 5 + Poisson(15)) uniformly in (T1, T2]. Existing changed users' tastes
  drift at T1: one of their two favourite categories is replaced by a random one, so that their
  new data carries information the base model lacks.
- Test users: every changed user plus unchanged users sampled up to ``--test-users``; each has
  10 more events in (T2, T2 + 7 days] drawn from their current tastes. Never trained on.

Events become one pair per (user, item) at the time of the first event (``weight`` = number of
events), as ``load_dataset`` makes them. Base pairs: ts <= T1; current pairs: ts <= T2; a test
user's truth: their pairs after T2 (items new to them).

Measured, with the library functions the training jobs use (``tastebud.training.jobs``), model
``als`` with ``factors=64`` (other parameters default), seed 0:

- full retrain, timed: ``fit_recommender(current pairs)`` (vocabularies, training data, fit);
- incremental, timed: ``update_recommender(base, current pairs, since_ms=T1)`` where ``base``
  is ``fit_recommender(base pairs)`` (yesterday's model: fitted before, not timed).

``--repeat`` alternating runs of each (each incremental run on a fresh copy of the base model;
the full runs use seeds 0, 1, ...); times are medians, the ratio is median over median. NDCG@10
(binary relevance, ideal DCG over min(|test|, 10); ``per_user_metrics``) on the test users,
full ranking over the model's items, each user's training items (current pairs) excluded,
seed-0 full model against the incremental one; ``ndcg_rel_diff`` = |incremental - full| / full.
Also printed: the base model before the update (what incremental saves us from serving) and the
full retrains with other seeds (how much NDCG moves with the seed alone).

Prints the figures; the last line is one flat JSON object.
"""

from __future__ import annotations

import argparse
import copy
import gc
import json
import time
from typing import Any

import numpy as np
import polars as pl
from scipy.sparse import csr_matrix

from tastebud.evaluation.metrics import Truth, per_user_metrics
from tastebud.ids import Vocabulary
from tastebud.registry.recommender import LoadedModel
from tastebud.training.recommender_jobs import fit_recommender, update_recommender

DAY_MS = 86_400_000
T0_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
T1_MS = T0_MS + 83 * DAY_MS
T2_MS = T0_MS + 90 * DAY_MS
T3_MS = T2_MS + 7 * DAY_MS
N_CATS = 50
TEST_EVENTS = 10
MODEL, PARAMS = "als", {"factors": 64}


class Simulation:
    """Users with two favourite categories over items with Zipf popularity (seeded)."""

    def __init__(self, n_users: int, n_items: int, seed: int) -> None:
        self.rng = rng = np.random.default_rng(seed)
        self.n_users, self.n_items = n_users, n_items
        # Every category gets items (as long as n_items >= N_CATS).
        self.item_cat = rng.permutation(np.arange(n_items) % N_CATS)
        pop = 1.0 / np.arange(1, n_items + 1) ** 0.9
        rng.shuffle(pop)
        self.pop = pop / pop.sum()
        # Within-category sampling by popularity: the items sorted by category, with a running
        # CDF that goes from c to c + 1 over category c (so a draw is c + U[0, 1)).
        self.by_cat = np.argsort(self.item_cat, kind="stable")
        cats = self.item_cat[self.by_cat]
        p = self.pop[self.by_cat]
        p = p / np.bincount(cats, weights=p, minlength=N_CATS)[cats]
        cum = np.cumsum(p)
        starts = np.r_[0, np.flatnonzero(np.diff(cats)) + 1]
        cum -= np.repeat(np.r_[0.0, cum[starts[1:] - 1]], np.diff(np.r_[starts, len(cats)]))
        cum[np.r_[starts[1:] - 1, len(cats) - 1]] = 1.0
        self.cdf = cats + cum
        self.fav = rng.integers(0, N_CATS, (n_users, 2))

    def events(
        self, users: np.ndarray, counts: np.ndarray, fav: np.ndarray, lo_ms: int, hi_ms: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``counts[j]`` events of ``users[j]`` at uniform times in [lo_ms, hi_ms]."""
        rng = self.rng
        u = np.repeat(users, counts)
        n = len(u)
        items = rng.choice(self.n_items, size=n, p=self.pop)
        taste = np.flatnonzero(rng.random(n) < 0.5)
        cat = fav[u[taste], rng.integers(0, 2, len(taste))]
        pos = np.searchsorted(self.cdf, cat + rng.random(len(taste)), side="right")
        items[taste] = self.by_cat[np.minimum(pos, len(self.by_cat) - 1)]
        ts = lo_ms + (rng.random(n) * (hi_ms - lo_ms + 1)).astype(np.int64)
        return u, items, np.minimum(ts, hi_ms)


def simulate(args: argparse.Namespace) -> dict[str, Any]:
    """The pairs (all times), the changed / new / test users (keys)."""
    sim = Simulation(args.users, args.items, args.seed)
    rng = sim.rng
    order = rng.permutation(args.users)
    n_new = int(round(args.changed * args.new_share))
    new, changed_old, unchanged = (
        order[:n_new],
        order[n_new : args.changed],
        order[args.changed :],
    )
    old = np.sort(order[n_new:])
    fav_now = sim.fav.copy()
    fav_now[changed_old, 1] = rng.integers(0, N_CATS, len(changed_old))
    sigma = 0.8
    base_n = np.maximum(
        1, np.round(rng.lognormal(np.log(args.per_user) - sigma**2 / 2, sigma, len(old)))
    ).astype(np.int64)
    changed = np.r_[changed_old, new]
    window_n = np.r_[2 + rng.poisson(10, len(changed_old)), 5 + rng.poisson(15, len(new))]
    n_test_unchanged = max(0, min(len(unchanged), args.test_users - args.changed))
    test = np.r_[changed, rng.choice(unchanged, n_test_unchanged, replace=False)]
    parts = [
        sim.events(old, base_n, sim.fav, T0_MS, T1_MS),
        sim.events(changed, window_n, fav_now, T1_MS + 1, T2_MS),
        sim.events(test, np.full(len(test), TEST_EVENTS), fav_now, T2_MS + 1, T3_MS),
    ]
    events = pl.DataFrame(
        {
            "u": np.concatenate([p[0] for p in parts]).astype(np.int64),
            "i": np.concatenate([p[1] for p in parts]).astype(np.int64),
            "ts_ms": np.concatenate([p[2] for p in parts]),
        }
    )
    pairs = (
        events.group_by("u", "i")
        .agg(pl.col("ts_ms").min(), pl.len().cast(pl.Float64).alias("weight"))
        .sort("ts_ms", "u", "i")
        .select(
            pl.concat_str(pl.lit("u"), pl.col("u").cast(pl.String).str.zfill(6)).alias("user_key"),
            pl.concat_str(pl.lit("i"), pl.col("i").cast(pl.String).str.zfill(5)).alias("item_id"),
            "ts_ms",
            "weight",
        )
    )

    def keys(idx: np.ndarray) -> list[str]:
        return [f"u{int(v):06d}" for v in idx]

    return {
        "events": events.height,
        "pairs": pairs,
        "changed": keys(changed),
        "new": keys(new),
        "changed_old": keys(changed_old),
        "test": keys(test),
    }


def seen_matrix(pairs: pl.DataFrame, users: Vocabulary, items: Vocabulary) -> csr_matrix:
    """The pairs as a users x items 0/1 matrix in the vocabularies' indices (unknowns dropped)."""
    u = users.indices(pairs.get_column("user_key").to_list())
    i = items.indices(pairs.get_column("item_id").to_list())
    keep = (u >= 0) & (i >= 0)
    m = csr_matrix(
        (np.ones(int(keep.sum()), np.float32), (u[keep], i[keep])), shape=(len(users), len(items))
    )
    m.sum_duplicates()
    m.data[:] = 1.0
    return m


def ndcg10(
    loaded: LoadedModel, test_keys: list[str], truth: pl.DataFrame, exclude: csr_matrix | None
) -> np.ndarray:
    """Per test user NDCG@10 (``truth``: user_key, item_id of the held-out pairs)."""
    row = {k: r for r, k in enumerate(test_keys)}
    rows = np.fromiter((row[k] for k in truth.get_column("user_key")), np.int64, truth.height)
    cols = loaded.items.indices(truth.get_column("item_id").to_list())
    known = cols >= 0
    hits = csr_matrix(
        (np.ones(int(known.sum()), np.float32), (rows[known], cols[known])),
        shape=(len(test_keys), len(loaded.items)),
    )
    n_rel = np.bincount(rows, minlength=len(test_keys)).astype(np.int64)
    users = loaded.users.indices(test_keys)
    recs = loaded.model.recommend(users, 10, exclude=exclude).item_idx
    return per_user_metrics(recs, Truth(hits, n_rel), [10])["ndcg@10"]


def timed(fn: Any) -> tuple[Any, float, float]:
    gc.collect()
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w, time.process_time() - c


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--users", type=int, default=100_000)
    ap.add_argument("--items", type=int, default=20_000)
    ap.add_argument("--changed", type=int, default=10_000)
    ap.add_argument("--new-share", type=float, default=0.1, help="changed users who are new")
    ap.add_argument("--per-user", type=float, default=50.0, help="mean base events per user")
    ap.add_argument("--test-users", type=int, default=20_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    started = time.perf_counter()

    t0 = time.perf_counter()
    sim = simulate(args)
    pairs: pl.DataFrame = sim["pairs"]
    base_pairs = pairs.filter(pl.col("ts_ms") <= T1_MS)
    current = pairs.filter(pl.col("ts_ms") <= T2_MS)
    truth = pairs.filter(
        (pl.col("ts_ms") > T2_MS) & pl.col("user_key").is_in(pl.Series(sim["test"]).implode())
    )
    test_keys = sorted(set(truth.get_column("user_key").to_list()))  # users with a novel item
    in_window = current.filter(pl.col("ts_ms") > T1_MS).get_column("user_key").unique()
    print(
        f"data: {args.users:,} users x {args.items:,} items, {sim['events']:,} events -> "
        f"{pairs.height:,} pairs, generated in {time.perf_counter() - t0:.1f} s"
    )
    print(
        f"  base (<= T1): {base_pairs.height:,} pairs, "
        f"{base_pairs.get_column('user_key').n_unique():,} users; current (<= T2): "
        f"{current.height:,} pairs; in (T1, T2]: {current.height - base_pairs.height:,} pairs "
        f"of {in_window.len():,} users ({len(sim['new']):,} new)"
    )
    print(f"  test: {len(test_keys):,} users, {truth.height:,} held-out pairs after T2")

    base, base_s, _ = timed(lambda: fit_recommender(base_pairs, MODEL, PARAMS, seed=0))
    print(f"base model (<= T1, not timed in the ratio): fitted in {base_s:.1f} s")
    # Yesterday's model as it stands, with today's exclusions (reference only).
    stale = ndcg10(base, test_keys, truth, seen_matrix(current, base.users, base.items))

    full_runs: list[tuple[float, float]] = []
    inc_runs: list[tuple[float, float]] = []
    full_ndcg: list[float] = []
    full: LoadedModel | None = None
    full_m = np.empty(0)
    inc: LoadedModel | None = None
    stats: dict[str, int] = {}
    for r in range(args.repeat):
        model, wall, cpu = timed(lambda r=r: fit_recommender(current, MODEL, PARAMS, seed=r))
        full_runs.append((wall, cpu))
        m = ndcg10(model, test_keys, truth, model.seen)
        full_ndcg.append(float(m.mean()))
        if r == 0:
            full, full_m = model, m
        del model
        fresh = copy.deepcopy(base)
        (updated, st), wall, cpu = timed(lambda f=fresh: update_recommender(f, current, T1_MS))
        inc_runs.append((wall, cpu))
        if r == 0:
            inc, stats = updated, st
        del fresh, updated
        print(
            f"  run {r + 1}: full {full_runs[-1][0]:.2f} s (cpu {full_runs[-1][1]:.2f}), "
            f"incremental {inc_runs[-1][0]:.2f} s (cpu {inc_runs[-1][1]:.2f})"
        )
    assert full is not None and inc is not None
    inc_m = ndcg10(inc, test_keys, truth, inc.seen)

    full_s = float(np.median([w for w, _ in full_runs]))
    inc_s = float(np.median([w for w, _ in inc_runs]))
    full_cpu = float(np.median([c for _, c in full_runs]))
    inc_cpu = float(np.median([c for _, c in inc_runs]))
    ratio = inc_s / full_s
    nd_full, nd_inc, nd_stale = float(full_m.mean()), float(inc_m.mean()), float(stale.mean())
    rel = abs(nd_inc - nd_full) / nd_full
    seed_spread = (max(full_ndcg) - min(full_ndcg)) / full_ndcg[0] if len(full_ndcg) > 1 else 0.0
    print(f"update stats: {stats}")
    print(
        f"full retrain: {full_s:.2f} s (cpu {full_cpu:.2f}); incremental: {inc_s:.2f} s "
        f"(cpu {inc_cpu:.2f}); ratio {ratio:.3f} (cpu {inc_cpu / full_cpu:.3f}; "
        f"target <= 0.10)"
    )

    groups = {
        "changed (existing)": set(sim["changed_old"]),
        "changed (new)": set(sim["new"]),
        "unchanged": set(test_keys) - set(sim["changed"]),
    }
    print(f"\n{'NDCG@10':<22}{'users':>8}{'full':>9}{'incr':>9}{'stale base':>12}")
    rows = [("all test users", np.ones(len(test_keys), bool))]
    rows += [(g, np.array([k in s for k in test_keys])) for g, s in groups.items()]
    for name, mask in rows:
        print(
            f"{name:<22}{int(mask.sum()):>8,}{full_m[mask].mean():>9.4f}"
            f"{inc_m[mask].mean():>9.4f}{stale[mask].mean():>12.4f}"
        )
    print(
        f"incremental vs full: relative difference {rel:.4f} (target <= 0.02); full retrains "
        f"with seeds 0..{args.repeat - 1}: {', '.join(f'{v:.4f}' for v in full_ndcg)} "
        f"(spread {seed_spread:.4f} of seed 0)"
    )
    met = ratio <= 0.10 and rel <= 0.02
    print(f"targets met: {met}")
    print(
        json.dumps(
            {
                "users": args.users,
                "items": args.items,
                "pairs": current.height,
                "changed_users": int(stats["changed_users"]),
                "new_users": int(stats["new_users"]),
                "dropped_unknown_items": int(stats["dropped_unknown_items"]),
                "test_users": len(test_keys),
                "repeat": args.repeat,
                "full_seconds": round(full_s, 3),
                "incremental_seconds": round(inc_s, 3),
                "time_ratio": round(ratio, 4),
                "cpu_time_ratio": round(inc_cpu / full_cpu, 4),
                "ndcg10_full": round(nd_full, 5),
                "ndcg10_incremental": round(nd_inc, 5),
                "ndcg_rel_diff": round(rel, 5),
                "ndcg10_stale_base": round(nd_stale, 5),
                "ndcg10_full_seed_spread": round(seed_spread, 5),
                "targets_met": met,
                "seconds": round(time.perf_counter() - started, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
