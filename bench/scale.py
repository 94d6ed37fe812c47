"""Scale: fit ALS on 100 k users x 20 k items x 5 M interactions and compute every user's top 10.

    python bench/scale.py [--users 100000] [--items 20000] [--interactions 5000000]

The interactions are synthetic and seeded (Zipf item popularity mixed with per-user category
tastes, as in the project's traffic simulator, generated here with NumPy so that setup takes
seconds). Timed: Tastebud's ``ALS`` fit (through ``implicit``), top-10 for every user with seen
items excluded, and the same fit with ``implicit`` alone for the overhead ratio. Peak RSS is
this process's maximum resident set. Prints the figures; the last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import resource
import time

import numpy as np
from implicit.cpu.als import AlternatingLeastSquares
from threadpoolctl import threadpool_limits

from tastebud.models import ALS, ALSConfig, FitOptions, TrainingData


def synthetic(n_users: int, n_items: int, n: int, seed: int = 0) -> TrainingData:
    """``n`` distinct-ish interactions: half from global Zipf popularity, half from the user's
    two favourite categories (50 categories)."""
    rng = np.random.default_rng(seed)
    n_cats = 50
    item_cat = rng.integers(0, n_cats, n_items)
    pop = 1.0 / np.arange(1, n_items + 1) ** 0.9
    rng.shuffle(pop)
    pop /= pop.sum()
    per_user = rng.multinomial(n, np.full(n_users, 1 / n_users))
    users = np.repeat(np.arange(n_users), per_user)
    fav = rng.integers(0, n_cats, (n_users, 2))
    by_cat = [np.flatnonzero(item_cat == c) for c in range(n_cats)]
    items = rng.choice(n_items, size=n, p=pop)
    taste = rng.random(n) < 0.5
    cats = fav[users[taste], rng.integers(0, 2, int(taste.sum()))]
    sizes = np.array([len(b) for b in by_cat])
    offs = (rng.random(int(taste.sum())) * sizes[cats]).astype(int)
    items[taste] = np.array([by_cat[c][o] for c, o in zip(cats, offs, strict=True)])
    ts = rng.random(n) * 86_400 * 90
    return TrainingData.from_arrays(n_users, n_items, users, items, ts=ts)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--users", type=int, default=100_000)
    ap.add_argument("--items", type=int, default=20_000)
    ap.add_argument("--interactions", type=int, default=5_000_000)
    ap.add_argument("--factors", type=int, default=64)
    args = ap.parse_args()
    t0 = time.perf_counter()
    data = synthetic(args.users, args.items, args.interactions)
    matrix = data.matrix()
    setup = time.perf_counter() - t0
    print(
        f"data: {args.users:,} users x {args.items:,} items, {len(data):,} interactions "
        f"({matrix.nnz:,} distinct pairs), generated in {setup:.1f} s"
    )
    cfg = ALSConfig(factors=args.factors, iterations=15)
    t0 = time.perf_counter()
    model = ALS(cfg).fit(data, FitOptions(seed=0))
    fit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    recs = model.recommend(np.arange(args.users), 10, exclude=matrix)
    rec_s = time.perf_counter() - t0
    assert (recs.item_idx >= 0).all()
    t0 = time.perf_counter()
    with threadpool_limits(1, "blas"):
        AlternatingLeastSquares(
            factors=cfg.factors,
            regularization=cfg.regularization,
            alpha=cfg.alpha,
            iterations=cfg.iterations,
            random_state=0,
        ).fit(matrix, show_progress=False)
    implicit_s = time.perf_counter() - t0
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"ALS fit (Tastebud): {fit_s:.1f} s; implicit alone: {implicit_s:.1f} s "
        f"(overhead {fit_s / implicit_s:.2f})"
    )
    print(f"top-10 for all {args.users:,} users: {rec_s:.1f} s ({args.users / rec_s:,.0f} users/s)")
    print(f"peak RSS: {rss_mb:,.0f} MB")
    print(
        json.dumps(
            {
                "users": args.users,
                "items": args.items,
                "interactions": len(data),
                "pairs": int(matrix.nnz),
                "als_fit_seconds": round(fit_s, 2),
                "implicit_fit_seconds": round(implicit_s, 2),
                "fit_overhead_ratio": round(fit_s / implicit_s, 3),
                "top10_all_users_seconds": round(rec_s, 2),
                "total_seconds": round(fit_s + rec_s, 2),
                "peak_rss_mb": round(rss_mb),
            }
        )
    )


if __name__ == "__main__":
    main()
