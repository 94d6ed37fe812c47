"""EASE's fit time in its three forms on the play counts of ``bench/quality.py``.

    python bench/linear_forms.py [--users 2000 --items 20000 --seed 0 --l2 300]

The data: ``tastebud simulate-counts`` (as ``bench/quality.py`` draws it), each user's rows in
file order, the temporal per-user split and its validation split (what tuning fits on). Timed:
the dual form (Woodbury, first λ, then another λ reusing the eigendecomposition), and the primal
form on the 10,000 most popular items with ``np.linalg.inv`` (the code before issue 23) and with
the Cholesky inverse it uses now. Prints the figures; the last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import polars as pl

from tastebud.evaluation import make_split, split_frames
from tastebud.models import EASE, EASEConfig
from tastebud.models.linear import ease_matrix
from tastebud.simulator import CountsConfig, generate_counts

CAP = 10_000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--users", type=int, default=2000)
    ap.add_argument("--items", type=int, default=20000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--l2", type=float, default=300.0)
    args = ap.parse_args()
    counts = generate_counts(CountsConfig(users=args.users, items=args.items, seed=args.seed))
    u, i, c = np.asarray(counts.user), np.asarray(counts.item), np.asarray(counts.count)
    order = np.lexsort((-c, u))  # grouped by user, highest count first, as the file is
    pairs = pl.DataFrame(
        {
            "user_key": u[order].astype(str),
            "item_id": i[order].astype(str),
            "ts_ms": (946_684_800 + np.arange(len(order))) * 1000,
            "weight": c[order].astype(float),
        }
    )
    train, _ = split_frames(pairs, "temporal-user")
    data = make_split(*split_frames(train, "temporal-user")).train
    print(f"validation train: {data.n_users:,} users, {data.n_items:,} items, {len(data):,} pairs")
    t0 = time.perf_counter()
    EASE(EASEConfig(l2=args.l2)).fit(data)
    dual_first = time.perf_counter() - t0
    t0 = time.perf_counter()
    EASE(EASEConfig(l2=args.l2 / 3)).fit(data)
    dual_next = time.perf_counter() - t0
    popular = np.argsort(-np.bincount(data.item, minlength=data.n_items), kind="stable")[:CAP]
    x = data.matrix()[:, np.sort(popular)]
    t0 = time.perf_counter()
    g = (x.T @ x).toarray().astype(np.float64)
    g[np.diag_indices_from(g)] += args.l2
    p = np.linalg.inv(g)
    b = -p / np.diag(p)
    np.fill_diagonal(b, 0.0)
    primal_inv = time.perf_counter() - t0
    del g, p, b
    t0 = time.perf_counter()
    ease_matrix(x, args.l2)
    primal_cholesky = time.perf_counter() - t0
    print(f"dual form: {dual_first:.2f} s, another λ {dual_next:.2f} s (every item)")
    print(
        f"primal form, {min(CAP, data.n_items):,} items: np.linalg.inv {primal_inv:.2f} s, "
        f"Cholesky {primal_cholesky:.2f} s"
    )
    print(
        json.dumps(
            {
                "users": data.n_users,
                "items": data.n_items,
                "dual_seconds": round(dual_first, 2),
                "dual_next_lambda_seconds": round(dual_next, 2),
                "primal_inv_seconds": round(primal_inv, 2),
                "primal_cholesky_seconds": round(primal_cholesky, 2),
                "primal_over_dual": round(primal_inv / dual_first, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
