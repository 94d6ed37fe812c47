"""Batch personalization: every user's top 10 of a 100 k-user x 20 k-item ALS model to a file.

    python bench/batch.py [--users 100000] [--items 20000] [--interactions 5000000] [--k 10]

The model is ALS with 64 factors fitted on the seeded synthetic data of ``bench/scale.py``
(the same generator, imported from it). The fit is not what is measured, so it runs only a few
sweeps. Timed: scoring alone (``model.recommend`` for every user, seen items excluded, results
kept in memory, one BLAS thread as in ``recommend_all``) for reference, then ``recommend_all``
to NDJSON and to Parquet (scoring, serialising and writing the file). Prints the figures; the
last line is one JSON object, whose ``users_per_second`` is that of the slower format.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
from scale import synthetic  # bench/scale.py: python puts the script's directory on sys.path
from threadpoolctl import threadpool_limits

from tastebud.ids import Vocabulary
from tastebud.models import ALS, ALSConfig, FitOptions
from tastebud.registry.recommender import LoadedModel
from tastebud.serving.batch import recommend_all


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--users", type=int, default=100_000)
    ap.add_argument("--items", type=int, default=20_000)
    ap.add_argument("--interactions", type=int, default=5_000_000)
    ap.add_argument("--factors", type=int, default=64)
    ap.add_argument("--iterations", type=int, default=3, help="ALS sweeps (not timed)")
    ap.add_argument("--k", type=int, default=10)
    args = ap.parse_args()
    t0 = time.perf_counter()
    data = synthetic(args.users, args.items, args.interactions)
    seen = data.matrix()
    model = ALS(ALSConfig(factors=args.factors, iterations=args.iterations)).fit(
        data, FitOptions(seed=0)
    )
    # Pseudonym-shaped user keys (32 hex digits), as in a real model's vocabulary.
    users = Vocabulary(f"{(i * 0x9E3779B97F4A7C15 + 1) % 2**128:032x}" for i in range(args.users))
    items = Vocabulary(f"item-{j}" for j in range(args.items))
    loaded = LoadedModel(model, users, items, {}, seen)
    info = {"name": "recommendations", "version": 1, "artifact_id": "bench"}
    setup_s = time.perf_counter() - t0
    print(
        f"data: {args.users:,} users x {args.items:,} items, {seen.nnz:,} distinct pairs; "
        f"ALS {args.factors} factors fitted in {setup_s:.1f} s (not timed)"
    )

    # CPU time (all threads) beside wall time: on a shared machine it is the steadier figure.
    t0, c0 = time.perf_counter(), time.process_time()
    with threadpool_limits(1, "blas"):  # as recommend_all runs it
        model.recommend(np.arange(args.users), args.k, exclude=seen)
    score_s, score_cpu = time.perf_counter() - t0, time.process_time() - c0
    print(
        f"scoring alone (top-{args.k}, in memory): {score_s:.1f} s "
        f"({args.users / score_s:,.0f} users/s), CPU {score_cpu:.1f} s"
    )

    seconds: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for fmt in ("ndjson", "parquet"):
            out = Path(tmp) / f"recs.{fmt}"
            c0 = time.process_time()
            result = recommend_all(loaded, args.k, out, version_info=info)
            cpu = time.process_time() - c0
            assert result.users == args.users
            seconds[fmt] = result.seconds
            size = out.stat().st_size / 2**20
            print(
                f"{fmt:<8} {result.seconds:5.1f} s  {result.users_per_second:>9,.0f} users/s  "
                f"CPU {cpu:5.1f} s  {size:6.1f} MB"
            )
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    load = os.getloadavg()[0]  # others' work on the machine skews the wall times
    print(f"peak RSS: {rss_mb:,.0f} MB; load average {load:.1f} on {os.cpu_count()} cores")
    slower = max(seconds.values())
    print(
        json.dumps(
            {
                "users": args.users,
                "ndjson_seconds": round(seconds["ndjson"], 2),
                "parquet_seconds": round(seconds["parquet"], 2),
                "users_per_second": round(args.users / slower),
            }
        )
    )


if __name__ == "__main__":
    main()
