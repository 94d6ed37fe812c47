"""Streaming replay on MovieLens 100K: the real-time layer on, off (model only) and popularity.

    python bench/replay.py [--data ../shared/data/ml-100k] [--limit N] [--split test|validation]
                           [--serving '{"session_category_weight": 0.05, ...}']
                           [--variants realtime_on,realtime_off,popularity]

1. **Split** (DESIGN.md "Offline recommendation quality"): ``ml-100k`` is imported with the
   MovieLens importer into a scratch SQLite database under the same fixed pseudonym key as
   ``bench/quality.py`` and read back with ``load_dataset``; ``split_frames(pairs,
   "temporal-user", seed=0)`` gives train and test (per user, the last 20 % by time). With
   ``--split validation`` the same split is applied once more to train: train-of-train is
   trained on and the validation part is replayed (for choosing serving parameters; the test
   replay is only for reporting).
2. **Training** through the product's own path: a fresh data directory gets the catalogue
   (``u.item`` genres as categories, ``u.user``) and *only the training ratings* (the importer
   run on a scratch directory whose ``u.data`` holds the training rows; deleted afterwards), then
   ``train_recommendations`` registers ``tastebud_hybrid`` (tuned on a validation split inside
   train) and ``popularity``.
3. **Replay**, once per variant, each in its own copy of that directory with fresh services
   (fresh real-time state, nothing leaks between variants): the API runs in-process
   (``TestClient(create_app(...))``, its lifespan loads the promoted model); every held-out
   interaction, in time order (ties: user, then item), is preceded by ``GET
   /v1/users/{u}/recommendations?k=10`` (serve key), scored (HR@10: the item is in the list;
   NDCG@10: 1/log2(rank + 1)), then sent with ``POST /v1/events`` (ingest key) as the
   ``rating`` event it is, with its 1997-98 timestamp.

Variants (``exploration_share=0`` and ``cache_ttl_s=0`` in all three; impressions are logged as
in production):

- ``realtime_on``: the promoted ``tastebud_hybrid`` with the serving defaults (or ``--serving``);
- ``realtime_off``: the same model with ``session_item_weight=0`` and
  ``session_category_weight=0``: the real-time state is still read, so consumed items are still
  excluded; the only difference from ``realtime_on`` is the session blending;
- ``popularity``: the registered ``popularity`` model promoted instead (trained on the same
  train by ``train_recommendations``), blending off, through the same API and exclusions.

Every variant excludes what the user interacted with up to that moment (training items from
the model's artifact, replayed items from the real-time state's consumed list). The script
checks it on every list (``exclusion_violations``, expected 0). Bounds of the real-time state
(``RealtimeConfig``): the newest 50 actions are the "session" (they expire 1 hour of wall clock
after the user's last event; a whole replay takes minutes), the newest 200 consumed
items are excluded (no user has more than 147 held-out ratings in ML-100K).

Prints per-variant figures; the last line is one flat JSON object with ``realtime_on``,
``realtime_off`` and ``popularity`` (each ``{"hr@10", "ndcg@10"}``), ``on_over_off_hr@10``,
``on_over_off_ndcg@10``, ``exclusion_violations`` and more.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import polars as pl
from fastapi.testclient import TestClient

from tastebud.api import create_app
from tastebud.config import ServingConfig, Settings
from tastebud.evaluation import load_dataset, split_frames
from tastebud.importers import import_movielens
from tastebud.registry.promotion import promote
from tastebud.services import Services, build_services
from tastebud.training.recommender_jobs import train_recommendations
from tastebud.worker import job_context

HERE = Path(__file__).resolve().parent
DEFAULT_DATA = HERE.parent.parent / "shared" / "data" / "ml-100k"
# The key of bench/quality.py: pseudonyms decide the order of users, hence the split's seeded
# tie-breaks; with it both benchmarks measure the very same split.
PSEUDONYM_KEY = "bench-quality-fixed-pseudonym-key-0000"
K = 10


def settings_for(data_dir: Path, serving: ServingConfig | None = None) -> Settings:
    """Embedded deployment in ``data_dir`` (explicit values: no ``TASTEBUD_*`` leaks in).
    ``synchronous=NORMAL``: one fsync per replayed event would only measure the disk."""
    return Settings(
        data_dir=data_dir,
        database_url=None,
        redis_url="memory://",
        artifact_dir=None,
        pseudonym_key=PSEUDONYM_KEY,
        env="development",
        consent_mode="opt-out",
        sqlite_synchronous="NORMAL",
        log_level="WARNING",
        serving=serving or ServingConfig(),
    )


# -- data ----------------------------------------------------------------------------------------
def read_ratings(data: Path) -> dict[tuple[str, str], tuple[str, int]]:
    """(raw user, item) -> (rating, timestamp s) from ``u.data`` (each pair occurs once)."""
    out: dict[tuple[str, str], tuple[str, int]] = {}
    with (data / "u.data").open(encoding="latin-1") as fh:
        for line in fh:
            f = line.split()
            if len(f) == 4:
                assert (f[0], f[1]) not in out, "a (user, item) pair rated twice"
                out[(f[0], f[1])] = (f[2], int(f[3]))
    return out


def make_split(
    data: Path, scratch: Path, which: str, raw_users: set[str]
) -> tuple[pl.DataFrame, pl.DataFrame, dict[str, str]]:
    """(train, held-out) pair frames as in ``bench/quality.py`` (``which``: ``test``, or
    ``validation``: the same split of train), and raw user id by pseudonym (the API takes the
    raw id and pseudonymizes it with the same key)."""
    services = build_services(settings_for(scratch), migrate=True)
    try:
        import_movielens(data, services.ingestor, services.catalog, services.pseudonymizer)
        pairs = load_dataset(services.store).pairs
        raw_of = {services.pseudonymizer.user(u): u for u in raw_users}
    finally:
        services.close()
    shutil.rmtree(scratch, ignore_errors=True)
    train, test = split_frames(pairs, "temporal-user", seed=0)
    if which == "validation":
        train, test = split_frames(train, "temporal-user", seed=0)
    return train, test, raw_of


def import_train(
    data: Path,
    services: Services,
    train_rows: list[tuple[str, str]],
    ratings: dict[tuple[str, str], tuple[str, int]],
    scratch: Path,
) -> None:
    """The catalogue and only the training ratings, through the MovieLens importer: a scratch
    directory links ``u.item``, ``u.user`` and ``u.genre`` and holds the training rows of
    ``u.data`` (deleted right after)."""
    scratch.mkdir()
    try:
        for name in ("u.item", "u.user", "u.genre"):
            if (data / name).exists():
                (scratch / name).symlink_to((data / name).resolve())
        with (scratch / "u.data").open("w", encoding="latin-1") as fh:
            for user, item in train_rows:
                rating, ts = ratings[(user, item)]
                fh.write(f"{user}\t{item}\t{rating}\t{ts}\n")
        summary = import_movielens(
            scratch, services.ingestor, services.catalog, services.pseudonymizer
        )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    assert summary.accepted == len(train_rows), summary.line()
    print(f"train import: {summary.line()}")


# -- replay --------------------------------------------------------------------------------------
class Tally:
    """HR@10 and NDCG@10 over replayed interactions, with per-mode counts."""

    def __init__(self) -> None:
        self.n = 0
        self.hits = 0
        self.dcg = 0.0
        self.violations = 0
        self.modes: Counter[str] = Counter()
        self.short_lists = 0

    def add(self, recs: list[str], item: str, mode: str) -> None:
        self.n += 1
        self.modes[mode] += 1
        if len(recs) < K:
            self.short_lists += 1
        if item in recs:
            self.hits += 1
            self.dcg += 1.0 / math.log2(recs.index(item) + 2)

    def figures(self) -> dict[str, float]:
        n = max(self.n, 1)
        return {"hr@10": round(self.hits / n, 4), "ndcg@10": round(self.dcg / n, 4)}


def replay(
    base: Path,
    work: Path,
    version: int,
    serving: ServingConfig,
    events: list[tuple[str, str, int, str]],
    seen: dict[str, set[str]],
) -> tuple[Tally, float]:
    """Replay ``events`` (raw user, item, ts s, rating) through the API of a copy of ``base``
    with ``recommendations`` v``version`` promoted and ``serving``; (tally, seconds)."""
    shutil.copytree(base, work)
    settings = settings_for(work, serving)
    services = build_services(settings, migrate=True)
    tally = Tally()
    seen = {u: set(items) for u, items in seen.items()}
    try:
        promote(
            services.registry,
            settings.governance,
            "recommendations",
            version,
            actor="bench",
            force=True,
            reason="replay bench",
        )
        serve = {"Authorization": f"Bearer {services.keys.create('replay-serve', 'serve')[1]}"}
        ingest = {"Authorization": f"Bearer {services.keys.create('replay-ingest', 'ingest')[1]}"}
        t0 = time.perf_counter()
        with TestClient(create_app(settings, services=services)) as client:
            for n, (user, item, ts, rating) in enumerate(events):
                r = client.get(f"/v1/users/{user}/recommendations", params={"k": K}, headers=serve)
                r.raise_for_status()
                body = r.json()
                recs = [x["item_id"] for x in body["items"]]
                mine = seen.setdefault(user, set())
                tally.violations += sum(1 for x in recs if x in mine)
                tally.add(recs, item, body["mode"])
                r = client.post(
                    "/v1/events",
                    headers=ingest,
                    json={
                        "event_id": f"replay-{user}-{item}",
                        "event_type": "rating",
                        "user_id": user,
                        "item_id": item,
                        "timestamp": ts,
                        "data": {"value": float(rating)},
                    },
                )
                r.raise_for_status()
                assert r.json()["status"] == "accepted", r.text
                mine.add(item)
                if (n + 1) % 5000 == 0:
                    f = tally.figures()
                    print(
                        f"  {n + 1:,}/{len(events):,}: hr@10 {f['hr@10']:.4f} ndcg@10 "
                        f"{f['ndcg@10']:.4f} ({time.perf_counter() - t0:.0f} s)",
                        flush=True,
                    )
        seconds = time.perf_counter() - t0
    finally:
        services.close()
        shutil.rmtree(work, ignore_errors=True)
    return tally, seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument(
        "--limit",
        type=int,
        default=None,
        help="replay only the first N held-out interactions (quick runs)",
    )
    ap.add_argument(
        "--split",
        choices=("test", "validation"),
        default="test",
        help="validation: train on train-of-train, replay the validation part",
    )
    ap.add_argument(
        "--serving",
        default="{}",
        help="JSON ServingConfig overrides for realtime_on (choose on validation)",
    )
    ap.add_argument("--model", default="tastebud_hybrid")
    ap.add_argument("--no-tuning", action="store_true", help="train the model untuned (faster)")
    ap.add_argument(
        "--variants",
        default="realtime_on,realtime_off,popularity",
        help="comma-separated subset to replay (ablations on validation)",
    )
    args = ap.parse_args()
    started = time.perf_counter()
    ratings = read_ratings(args.data)
    fixed = {"exploration_share": 0.0, "cache_ttl_s": 0.0}
    on_cfg = ServingConfig(**{**fixed, **json.loads(args.serving)})
    configs = {
        "realtime_on": on_cfg,
        "realtime_off": on_cfg.model_copy(
            update={"session_item_weight": 0.0, "session_category_weight": 0.0}
        ),
        "popularity": on_cfg.model_copy(
            update={"session_item_weight": 0.0, "session_category_weight": 0.0}
        ),
    }
    wanted = args.variants.split(",")
    if unknown := set(wanted) - set(configs):
        ap.error(f"unknown variants {sorted(unknown)}; known: {', '.join(configs)}")
    configs = {k: v for k, v in configs.items() if k in wanted}
    with tempfile.TemporaryDirectory(prefix="tb-replay-") as tmp_s:
        tmp = Path(tmp_s)
        train, held, raw_of = make_split(
            args.data, tmp / "all", args.split, {u for u, _ in ratings}
        )
        train_rows = [(raw_of[k], i) for k, i in train.select("user_key", "item_id").iter_rows()]
        events = sorted(
            (
                (raw_of[k], i, ratings[(raw_of[k], i)][1], ratings[(raw_of[k], i)][0])
                for k, i in held.select("user_key", "item_id").iter_rows()
            ),
            key=lambda e: (e[2], int(e[0]), int(e[1])),
        )
        total = len(events)
        if args.limit is not None:
            events = events[: args.limit]
        seen: dict[str, set[str]] = defaultdict(set)
        for user, item in train_rows:
            seen[user].add(item)
        print(
            f"split {args.split}: {len(train_rows):,} training pairs, {total:,} held-out "
            f"interactions ({held.get_column('user_key').n_unique()} users); replaying "
            f"{len(events):,}"
        )

        base = tmp / "base"
        services = build_services(settings_for(base), migrate=True)
        try:
            import_train(args.data, services, train_rows, ratings, tmp / "ml-train")
            t0 = time.perf_counter()
            ctx = job_context(services, "bench", log=print)
            model_v = train_recommendations(ctx, model=args.model, tuning=not args.no_tuning)
            train_s = time.perf_counter() - t0
            pop_v = train_recommendations(ctx, model="popularity", tuning=False)
            print(
                f"trained {args.model} (tuning {'off' if args.no_tuning else 'on'}) in "
                f"{train_s:.1f} s: params {model_v.lineage.get('params')}"
            )
        finally:
            services.close()

        versions = {
            "realtime_on": model_v.version,
            "realtime_off": model_v.version,
            "popularity": pop_v.version,
        }
        results: dict[str, Tally] = {}
        seconds: dict[str, float] = {}
        for name, cfg in configs.items():
            print(
                f"{name}: recommendations v{versions[name]}, session_item_weight "
                f"{cfg.session_item_weight}, session_category_weight "
                f"{cfg.session_category_weight}, session_decay {cfg.session_decay}"
            )
            tally, secs = replay(base, tmp / name, versions[name], cfg, events, seen)
            results[name], seconds[name] = tally, secs
            f = tally.figures()
            print(
                f"{name}: hr@10 {f['hr@10']:.4f} ndcg@10 {f['ndcg@10']:.4f} over {tally.n:,} "
                f"interactions in {secs:.0f} s ({2 * tally.n / secs:.0f} requests/s); modes "
                f"{dict(tally.modes)}; short lists {tally.short_lists}; exclusion violations "
                f"{tally.violations}",
                flush=True,
            )

    figs = {name: t.figures() for name, t in results.items()}
    print()
    print(f"{'variant':<14}{'HR@10':>9}{'NDCG@10':>9}")
    for name, f in figs.items():
        print(f"{name:<14}{f['hr@10']:>9.4f}{f['ndcg@10']:>9.4f}")
    summary: dict[str, Any] = dict(figs)
    if "realtime_on" in figs and "realtime_off" in figs:
        on, off = figs["realtime_on"], figs["realtime_off"]
        ratio = {m: round(on[m] / off[m], 4) if off[m] else None for m in ("hr@10", "ndcg@10")}
        print(f"on / off: HR@10 {ratio['hr@10']}, NDCG@10 {ratio['ndcg@10']} (target: > 1)")
        summary.update(
            {
                "on_over_off_hr@10": ratio["hr@10"],
                "on_over_off_ndcg@10": ratio["ndcg@10"],
                "target_met": on["ndcg@10"] > off["ndcg@10"] and on["hr@10"] > off["hr@10"],
            }
        )
    summary.update(
        {
            "split": args.split,
            "model": args.model,
            "tuning": not args.no_tuning,
            "serving_on": {
                k: v
                for k, v in on_cfg.model_dump().items()
                if k in ("session_item_weight", "session_category_weight", "session_decay")
            },
            "interactions": len(events),
            "held_out_total": total,
            "exclusion_violations": sum(t.violations for t in results.values()),
            "replay_seconds": {k: round(v, 1) for k, v in seconds.items()},
            "seconds": round(time.perf_counter() - started, 1),
        }
    )
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
