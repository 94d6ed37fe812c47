"""Offline recommendation quality on MovieLens 100K, DESIGN.md protocol, peers in the same run.

    python bench/quality.py [--data ../shared/data/ml-100k] [--protocol temporal-user]

1. Imports ``ml-100k`` into a fresh embedded (SQLite) database with ``tastebud import movielens``
   and loads it back through the evaluation pipeline (so what is measured is what users get).
2. ``tastebud.evaluation.evaluate``: every registered model (Tastebud's ``tastebud_*`` and the
   peer implementations ``popularity``, ``itemknn``, ``als``, ``bpr``, ``ease``), each tuned on
   a validation split made the same way from train, refitted on train, scored on test once.
3. The peers again, *called directly* (no Tastebud code between them and the matrix):
   ``implicit`` ALS and item-kNN (CosineRecommender) with their own ``recommend`` and filtering,
   EASE in plain NumPy, popularity; tuned with the same grids and the same coordinate search on
   the same validation split.
4. ``best_ndcg10_over_best_peer``: Tastebud's best model, chosen on validation, over the best
   peer by *test* NDCG@10 (the choice that flatters the peers). Also the ALS overhead: Tastebud's
   ALS fit + top-20 against ``implicit`` alone on the same matrix with the same parameters.

Prints a table; the last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from implicit.cpu.als import AlternatingLeastSquares
from implicit.nearest_neighbours import CosineRecommender
from threadpoolctl import threadpool_limits

from tastebud.config import Settings
from tastebud.evaluation import evaluate, load_dataset, make_split, per_user_metrics, split_frames
from tastebud.evaluation.metrics import catalog_metrics
from tastebud.evaluation.protocol import Split
from tastebud.evaluation.tuning import coordinate_search
from tastebud.models import ALS, ALSConfig, EASEConfig, FitOptions, ItemKNNConfig
from tastebud.models.linear import ease_matrix
from tastebud.services import build_services

# implicit's kNN converts its own transposed input and warns about it on every call.
warnings.filterwarnings("ignore", message="Method expects CSR input")

HERE = Path(__file__).resolve().parent
DEFAULT_DATA = HERE.parent.parent / "shared" / "data" / "ml-100k"

Ranker = Callable[[Split, dict[str, Any]], np.ndarray]


def _metrics(split: Split, recs: np.ndarray) -> dict[str, float]:
    m = per_user_metrics(recs, split.truth, (10, 20))
    item_users = np.diff(split.train.matrix().tocsc().indptr)
    out = {k: float(np.mean(m[k])) for k in ("ndcg@10", "mrr@10", "precision@10", "recall@20")}
    out["coverage@10"] = catalog_metrics(recs, 10, item_users, split.train.n_users)["coverage@10"]
    return out


def implicit_als(split: Split, p: dict[str, Any]) -> np.ndarray:
    cfg = ALSConfig(**p)
    with threadpool_limits(1, "blas"):
        model = AlternatingLeastSquares(
            factors=cfg.factors,
            regularization=cfg.regularization,
            alpha=cfg.alpha,
            iterations=cfg.iterations,
            random_state=0,
        )
        x = split.train.matrix()
        model.fit(x, show_progress=False)
        ids, _ = model.recommend(
            split.test_users, x[split.test_users], N=20, filter_already_liked_items=True
        )
    return np.asarray(ids, dtype=np.int32)


def implicit_itemknn(split: Split, p: dict[str, Any]) -> np.ndarray:
    cfg = ItemKNNConfig(**p)
    model = CosineRecommender(K=cfg.neighbors)
    x = split.train.matrix()
    model.fit(x, show_progress=False)
    ids, _ = model.recommend(
        split.test_users, x[split.test_users], N=20, filter_already_liked_items=True
    )
    return np.asarray(ids, dtype=np.int32)


def numpy_ease(split: Split, p: dict[str, Any]) -> np.ndarray:
    x = split.train.matrix()
    b = ease_matrix(x, EASEConfig(**p).l2)
    scores = np.asarray(x[split.test_users] @ b)
    scores[x[split.test_users].nonzero()] = -np.inf
    return np.argsort(-scores, axis=1, kind="stable")[:, :20].astype(np.int32)


def plain_popularity(split: Split, p: dict[str, Any]) -> np.ndarray:
    counts = np.bincount(split.train.item, minlength=split.train.n_items).astype(float)
    scores = np.tile(counts, (len(split.test_users), 1))
    scores[split.train.matrix()[split.test_users].nonzero()] = -np.inf
    return np.argsort(-scores, axis=1, kind="stable")[:, :20].astype(np.int32)


def tune_direct(rank: Ranker, space: dict[str, list[Any]], validation: Split) -> dict[str, Any]:
    """The coordinate search of ``tastebud.evaluation.tune`` (two passes, best NDCG@10), on a
    direct call of the peer."""
    cache: dict[str, float] = {}

    def score(p: dict[str, Any]) -> float:
        key = json.dumps(p, sort_keys=True)
        if key not in cache:
            cache[key] = _metrics(validation, rank(validation, p))["ndcg@10"]
        return cache[key]

    return coordinate_search(space, score)[0]


def als_overhead(split: Split, params: dict[str, Any], repeat: int = 3) -> dict[str, float]:
    """Tastebud's ALS path (fit + top-20 for every test user) over implicit alone, same matrix
    and parameters; medians of ``repeat`` alternating runs."""
    ours, theirs = [], []
    for _ in range(repeat):
        t0 = time.perf_counter()
        model = ALS(ALSConfig(**params)).fit(split.train, FitOptions(seed=0))
        model.recommend(split.test_users, 20, exclude=split.train.matrix())
        ours.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        implicit_als(split, params)
        theirs.append(time.perf_counter() - t0)
    a, b = float(np.median(ours)), float(np.median(theirs))
    return {"tastebud_als_seconds": a, "implicit_als_seconds": b, "als_overhead_ratio": a / b}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--protocol", default="temporal-user")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="tb-quality-") as tmp:
        env = {k: v for k, v in os.environ.items() if not k.startswith("TASTEBUD_")}
        env["TASTEBUD_DATA_DIR"] = tmp
        # A fixed pseudonym key: pseudonyms decide the order of users, hence the split's seeded
        # tie-breaks; with it every run measures the very same split.
        env["TASTEBUD_PSEUDONYM_KEY"] = "bench-quality-fixed-pseudonym-key-0000"
        subprocess.run(
            [sys.executable, "-m", "tastebud.cli", "import", "movielens", str(args.data)],
            env=env,
            check=True,
            capture_output=True,
        )
        services = build_services(
            Settings(data_dir=Path(tmp), pseudonym_key=env["TASTEBUD_PSEUDONYM_KEY"])
        )
        try:
            dataset = load_dataset(services.store)
        finally:
            services.close()
    print(f"dataset: {dataset.summary().to_json()}")
    result = evaluate(dataset, protocol=args.protocol, seed=args.seed, log=print)
    train, test = split_frames(dataset.pairs, args.protocol, seed=args.seed)
    split = make_split(train, test)
    validation = make_split(*split_frames(train, args.protocol, seed=args.seed))
    knn_space = ItemKNNConfig.search_space()["neighbors"]  # implicit's kNN has no shrinkage
    direct: dict[str, tuple[Ranker, dict[str, list[Any]]]] = {
        "implicit_als": (implicit_als, ALSConfig.search_space()),
        "implicit_itemknn": (implicit_itemknn, {"neighbors": knn_space}),
        "numpy_ease": (numpy_ease, EASEConfig.search_space()),
        "plain_popularity": (plain_popularity, {}),
    }
    rows: dict[str, dict[str, Any]] = {}
    for name, m in result.models.items():
        rows[name] = {
            **{
                k: m.metrics[k]
                for k in ("ndcg@10", "mrr@10", "precision@10", "recall@20", "coverage@10")
            },
            "fit_seconds": m.fit_seconds,
            "peer": m.peer,
        }
    for name, (rank, space) in direct.items():
        params = tune_direct(rank, space, validation)
        t0 = time.perf_counter()
        recs = rank(split, params)
        rows[name] = {
            **_metrics(split, recs),
            "fit_seconds": time.perf_counter() - t0,
            "peer": True,
            "params": params,
        }
        print(f"{name}: ndcg@10 {rows[name]['ndcg@10']:.4f} params {params}")
    best_model = result.best_model
    assert best_model is not None  # Tastebud's own models ran
    peers = [n for n, r in rows.items() if r["peer"]]
    best_peer = max(peers, key=lambda n: rows[n]["ndcg@10"])
    ratio = rows[best_model]["ndcg@10"] / rows[best_peer]["ndcg@10"]
    overhead = als_overhead(split, result.models["als"].params)
    print()
    print(
        f"{'model':<18}{'ndcg@10':>9}{'mrr@10':>9}{'prec@10':>9}{'rec@20':>9}{'cov@10':>9}"
        f"{'fit s':>8}"
    )
    for name, r in rows.items():
        tag = "" if r["peer"] else " *"
        print(
            f"{name + tag:<18}{r['ndcg@10']:>9.4f}{r['mrr@10']:>9.4f}"
            f"{r['precision@10']:>9.4f}{r['recall@20']:>9.4f}{r['coverage@10']:>9.4f}"
            f"{r['fit_seconds']:>8.2f}"
        )
    print(
        f"(* Tastebud's own) best model {best_model} (chosen on validation) / best peer "
        f"{best_peer}: {ratio:.3f} (target >= 1.25)"
    )
    print(
        f"ALS: Tastebud {overhead['tastebud_als_seconds']:.2f} s vs implicit alone "
        f"{overhead['implicit_als_seconds']:.2f} s: overhead {overhead['als_overhead_ratio']:.2f}"
        " (target <= 1.2)"
    )
    summary = {
        "protocol": args.protocol,
        "dataset": "ml-100k",
        "models": {
            n: {k: round(v, 4) for k, v in r.items() if isinstance(v, float)}
            for n, r in rows.items()
        },
        "best_model": best_model,
        "best_peer": best_peer,
        "best_ndcg10_over_best_peer": round(ratio, 4),
        **{k: round(v, 3) for k, v in overhead.items()},
        "seconds": round(time.perf_counter() - started, 1),
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
