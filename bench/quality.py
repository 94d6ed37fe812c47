"""Offline recommendation quality on two kinds of data, DESIGN.md protocol, peers in the same run.

    python bench/quality.py [--data ../shared/data/ml-100k] [--protocol temporal-user]
                            [--counts-users 2000 --counts-items 20000 --counts-seed 0]
                            [--skip-movielens | --skip-counts]

Two data sets, each measured the same way:

- **MovieLens 100K** (ratings with real timestamps), imported with ``tastebud import movielens``;
- **play counts without time** made by ``tastebud simulate-counts`` (by default 2,000 users and
  a catalogue of 20,000 items, about 100,000 (user, item, count) rows, each user's rows sorted
  by count: the shape of Last.fm's hetrec-2011 file), imported with ``tastebud import
  interactions FILE --user user --item item --weight count``, so timestamps are synthesised
  from the file's order. ``evaluate_seconds`` is the wall time of ``evaluate`` on it, all
  models with their defaults, as ``tastebud evaluate`` runs them.

For each:

1. Imports the data into a fresh embedded (SQLite) database with the CLI and loads it back
   through the evaluation pipeline (so what is measured is what users get).
2. ``tastebud.evaluation.evaluate``: every registered model (Tastebud's ``tastebud_*`` and the
   peer implementations ``popularity``, ``itemknn``, ``als``, ``bpr``, ``ease``), each tuned on
   a validation split made the same way from train, refitted on train, scored on test once.
3. The peers again, *called directly* (no Tastebud code between them and the matrix):
   ``implicit`` ALS (on the binary matrix, ``log(1 + w)`` or ``implicit``'s own ``bm25_weight``,
   chosen on validation), item-kNN (CosineRecommender) and BM25 item-kNN (BM25Recommender)
   with their own ``recommend`` and filtering, EASE in plain NumPy, popularity; tuned with the
   same grids and the same coordinate search on the same validation split.
4. The ratio: the best model, chosen on validation among all (peers included), over the best
   peer by *test* NDCG@10 (the choice that flatters the peers): ``best_ndcg10_over_best_peer``
   on MovieLens, ``best_ndcg10_over_best_peer_counts`` on the counts. Also, on MovieLens, the ALS
   overhead: Tastebud's ALS fit + top-20 against ``implicit`` alone on the same matrix with the
   same parameters.

Prints a table per data set; the last line is one JSON object.
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
from implicit.nearest_neighbours import BM25Recommender, CosineRecommender, bm25_weight
from scipy.sparse import csr_matrix
from threadpoolctl import threadpool_limits

from tastebud.config import Settings
from tastebud.evaluation import (
    Dataset,
    evaluate,
    load_dataset,
    make_split,
    per_user_metrics,
    split_frames,
)
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


def weighted(split: Split, weighting: str) -> csr_matrix:
    """The training matrix as an ``implicit`` user would weigh it: 1s, ``log(1 + w)`` of the
    summed weights, or ``implicit``'s ``bm25_weight`` (items as documents, as its Last.fm
    example does)."""
    if weighting == "binary":
        return split.train.matrix()
    x = split.train.matrix(binary=False).copy()
    if weighting == "log":
        x.data = np.log1p(x.data)
        return x
    return csr_matrix(bm25_weight(x.T.tocsr(), K1=100, B=0.8).T, dtype=np.float32)


def implicit_als(split: Split, p: dict[str, Any]) -> np.ndarray:
    cfg = ALSConfig(**{k: v for k, v in p.items() if k != "weighting"})
    with threadpool_limits(1, "blas"):
        model = AlternatingLeastSquares(
            factors=cfg.factors,
            regularization=cfg.regularization,
            alpha=cfg.alpha,
            iterations=cfg.iterations,
            random_state=0,
        )
        x = weighted(split, p.get("weighting", "binary"))
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


def implicit_bm25knn(split: Split, p: dict[str, Any]) -> np.ndarray:
    model = BM25Recommender(K=int(p.get("neighbors", 100)), K1=100, B=0.8)
    x = split.train.matrix(binary=False)
    model.fit(x, show_progress=False)
    ids, _ = model.recommend(
        split.test_users, x[split.test_users], N=20, filter_already_liked_items=True
    )
    return np.asarray(ids, dtype=np.int32)


def numpy_ease(split: Split, p: dict[str, Any]) -> np.ndarray:
    """EASE in plain NumPy: the textbook inverse, or with fewer users than items the same
    matrix through the Woodbury identity (the textbook one takes minutes at 20,000 items)."""
    x = weighted(split, p.get("weighting", "binary"))
    l2 = EASEConfig(l2=p.get("l2", 300.0)).l2
    h = x[split.test_users]
    if x.shape[0] < x.shape[1]:
        m = np.linalg.inv((x @ x.T).toarray() + l2 * np.eye(x.shape[0]))
        mx = np.asarray(x.T @ m).T  # M X, users x items
        d = (1.0 - np.asarray(x.multiply(mx).sum(axis=0)).ravel()) / l2
        hp = (h.toarray() - (h @ x.T).toarray() @ mx) / l2
        scores = h.toarray() - hp / d
    else:
        scores = np.asarray(h @ ease_matrix(x, l2))
    scores[h.nonzero()] = -np.inf
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


def import_dataset(cli: list[str], files: dict[str, bytes] | None = None) -> Dataset:
    """Run ``tastebud <cli>`` into a fresh embedded database (files written first, into the
    data directory, and named in ``cli`` by ``{dir}``) and load it back for evaluation."""
    with tempfile.TemporaryDirectory(prefix="tb-quality-") as tmp:
        env = {k: v for k, v in os.environ.items() if not k.startswith("TASTEBUD_")}
        env["TASTEBUD_DATA_DIR"] = tmp
        # A fixed pseudonym key: pseudonyms decide the order of users, hence the split's seeded
        # tie-breaks; with it every run measures the very same split.
        env["TASTEBUD_PSEUDONYM_KEY"] = "bench-quality-fixed-pseudonym-key-0000"
        for name, content in (files or {}).items():
            Path(tmp, name).write_bytes(content)
        subprocess.run(
            [sys.executable, "-m", "tastebud.cli", *(a.format(dir=tmp) for a in cli)],
            env=env,
            check=True,
            capture_output=True,
        )
        services = build_services(
            Settings(data_dir=Path(tmp), pseudonym_key=env["TASTEBUD_PSEUDONYM_KEY"])
        )
        try:
            return load_dataset(services.store)
        finally:
            services.close()


def measure(label: str, dataset: Dataset, args: argparse.Namespace) -> dict[str, Any]:
    """Evaluate every model on ``dataset``, then the peers called directly; print the table."""
    print(f"== {label}: {dataset.summary().to_json()}")
    t0 = time.perf_counter()
    result = evaluate(dataset, protocol=args.protocol, seed=args.seed, log=print)
    evaluate_seconds = time.perf_counter() - t0
    train, test = split_frames(dataset.pairs, args.protocol, seed=args.seed)
    split = make_split(train, test)
    validation = make_split(*split_frames(train, args.protocol, seed=args.seed))
    knn_space = ItemKNNConfig.search_space()["neighbors"]  # implicit's kNN has no shrinkage
    weightings = ["binary", "log", "bm25"]
    als_space = {**ALSConfig.search_space(), "weighting": weightings}
    direct: dict[str, tuple[Ranker, dict[str, list[Any]]]] = {
        "implicit_als": (implicit_als, als_space),
        "implicit_itemknn": (implicit_itemknn, {"neighbors": knn_space}),
        "implicit_bm25knn": (implicit_bm25knn, {"neighbors": knn_space}),
        "numpy_ease": (numpy_ease, {**EASEConfig.search_space(), "weighting": weightings}),
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
        t1 = time.perf_counter()
        recs = rank(split, params)
        rows[name] = {
            **_metrics(split, recs),
            "fit_seconds": time.perf_counter() - t1,
            "peer": True,
            "params": params,
        }
        print(f"{name}: ndcg@10 {rows[name]['ndcg@10']:.4f} params {params}")
    best_model = result.best_model
    assert best_model is not None  # models ran, tuned on validation
    peers = [n for n, r in rows.items() if r["peer"]]
    best_peer = max(peers, key=lambda n: rows[n]["ndcg@10"])
    ratio = rows[best_model]["ndcg@10"] / rows[best_peer]["ndcg@10"]
    print()
    print(
        f"{'model':<18}{'ndcg@10':>9}{'mrr@10':>9}{'prec@10':>9}{'rec@20':>9}{'cov@10':>9}"
        f"{'fit s':>8}{'valid':>9}"
    )
    for name, r in rows.items():
        tag = "" if r["peer"] else " *"
        tuned = result.tuning.get(name)
        valid = tuned.validation_ndcg10 if tuned is not None else None
        print(
            f"{name + tag:<18}{r['ndcg@10']:>9.4f}{r['mrr@10']:>9.4f}"
            f"{r['precision@10']:>9.4f}{r['recall@20']:>9.4f}{r['coverage@10']:>9.4f}"
            f"{r['fit_seconds']:>8.2f}{'' if valid is None else f'{valid:>9.4f}'}"
        )
    print(
        f"(* Tastebud's own) best model {best_model} (chosen on validation among all) / best "
        f"peer {best_peer} (on test): {ratio:.3f}; evaluate took {evaluate_seconds:.0f} s"
    )
    return {
        "result": result,
        "split": split,
        "rows": rows,
        "best_model": best_model,
        "best_peer": best_peer,
        "ratio": ratio,
        "evaluate_seconds": evaluate_seconds,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--protocol", default="temporal-user")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--counts-users", type=int, default=2000)
    ap.add_argument("--counts-items", type=int, default=20000)
    ap.add_argument("--counts-seed", type=int, default=0)
    ap.add_argument("--skip-movielens", action="store_true")
    ap.add_argument("--skip-counts", action="store_true")
    args = ap.parse_args()
    if args.skip_movielens and args.skip_counts:
        ap.error("nothing to measure: drop --skip-movielens or --skip-counts")
    started = time.perf_counter()
    summary: dict[str, Any] = {"protocol": args.protocol}
    if not args.skip_movielens:
        ml = measure(
            "MovieLens 100K", import_dataset(["import", "movielens", str(args.data)]), args
        )
        overhead = als_overhead(ml["split"], ml["result"].models["als"].params)
        print(
            f"ALS: Tastebud {overhead['tastebud_als_seconds']:.2f} s vs implicit alone "
            f"{overhead['implicit_als_seconds']:.2f} s: overhead "
            f"{overhead['als_overhead_ratio']:.2f} (target <= 1.2)"
        )
        print(f"MovieLens ratio {ml['ratio']:.3f} (target >= 1.25)")
        summary.update(
            {
                "dataset": "ml-100k",
                "models": _rounded(ml["rows"]),
                "best_model": ml["best_model"],
                "best_peer": ml["best_peer"],
                "best_ndcg10_over_best_peer": round(ml["ratio"], 4),
                **{k: round(v, 3) for k, v in overhead.items()},
            }
        )
    if not args.skip_counts:
        gen = [
            "simulate-counts",
            "--out",
            "{dir}/counts.tsv",
            "--users",
            str(args.counts_users),
            "--items",
            str(args.counts_items),
            "--seed",
            str(args.counts_seed),
        ]
        with tempfile.TemporaryDirectory(prefix="tb-counts-") as tmp:
            env = {k: v for k, v in os.environ.items() if not k.startswith("TASTEBUD_")}
            subprocess.run(
                [sys.executable, "-m", "tastebud.cli", *(a.format(dir=tmp) for a in gen)],
                env=env,
                check=True,
                capture_output=True,
            )
            content = Path(tmp, "counts.tsv").read_bytes()
        imported = import_dataset(
            ["import", "interactions", "{dir}/counts.tsv", "--user", "user", "--item", "item"]
            + ["--weight", "count"],
            {"counts.tsv": content},
        )
        counts = measure("play counts without time (tastebud simulate-counts)", imported, args)
        print(
            f"counts ratio {counts['ratio']:.3f} (target >= 1.0), evaluate "
            f"{counts['evaluate_seconds']:.0f} s (target <= 300)"
        )
        summary.update(
            {
                "counts_dataset": imported.summary().to_json(),
                "counts_models": _rounded(counts["rows"]),
                "best_model_counts": counts["best_model"],
                "best_peer_counts": counts["best_peer"],
                "best_ndcg10_over_best_peer_counts": round(counts["ratio"], 4),
                "evaluate_seconds": round(counts["evaluate_seconds"], 1),
            }
        )
    summary["seconds"] = round(time.perf_counter() - started, 1)
    print(json.dumps(summary))


def _rounded(rows: dict[str, dict[str, Any]]) -> dict[str, dict[str, float]]:
    return {
        n: {k: round(v, 4) for k, v in r.items() if isinstance(v, float)} for n, r in rows.items()
    }


if __name__ == "__main__":
    main()
