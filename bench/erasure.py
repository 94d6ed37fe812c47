"""How long one erasure takes on the 100k-user simulation (issue 9).

    python bench/erasure.py [--users 100000] [--days 7] [--erase 5]

A data dir (SQLite, in-process real-time state, or ``--redis URL``) gets the simulated
NetworkBuster traffic of ``--users`` users over ``--days`` days through the ingest path, a
feature snapshot published to the real-time state, and two registered recommender versions
(ALS, 64 factors: one in production, one archived), both holding every user. Then ``--erase``
users are erased one after the other (each erasure covers every store: events, attributes,
consents, aliases, features, real-time state, caches, impressions, feedback, both model versions
as new revisions, batch lists), timed; the figures are the median and the maximum. The last
line is one flat JSON object.
"""

from __future__ import annotations

import argparse
import json
import secrets
import statistics
import tempfile
import time
from pathlib import Path

from cryptography.fernet import Fernet

from tastebud.config import Settings
from tastebud.features import build_snapshot, publish_snapshot
from tastebud.registry import promote
from tastebud.rights import erase
from tastebud.services import build_services
from tastebud.simulator import SimConfig, Simulator
from tastebud.training.recommender_jobs import train_recommendations
from tastebud.worker import job_context


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--users", type=int, default=100_000)
    ap.add_argument("--items", type=int, default=20_000)
    ap.add_argument("--days", type=int, default=7)
    ap.add_argument("--erase", type=int, default=5)
    ap.add_argument("--redis", default="memory://")
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="tb-erasure-"))
    settings = Settings(
        data_dir=root,
        redis_url=args.redis,
        pseudonym_key=secrets.token_hex(32),
        fernet_keys=Fernet.generate_key().decode(),
    )
    s = build_services(settings, migrate=True)
    t0 = time.perf_counter()
    sim = Simulator(SimConfig(users=args.users, items=args.items, days=args.days, seed=0))
    s.catalog.put_items(list(sim.items()), 0)
    s.catalog.put_users(list(sim.users()), 0)
    batch: list[dict[str, object]] = []
    n_events = 0
    for ev in sim.events():
        batch.append(ev)
        if len(batch) == 5000:
            n_events += s.ingestor.ingest(batch, source="import").accepted
            batch = []
    n_events += s.ingestor.ingest(batch, source="import").accepted
    load_s = time.perf_counter() - t0
    print(f"{args.users:,} users, {n_events:,} events ingested in {load_s:.0f} s")
    snap = build_snapshot(s.store)
    publish_snapshot(s.store, s.realtime, snap.snapshot_id)
    ctx = job_context(s, "bench")
    versions = []
    for _ in range(2):
        mv = train_recommendations(ctx, model="als", tuning=False)
        versions.append(mv.version)
        s.registry.approve("recommendations", mv.version, actor="bench")
        promote(
            s.registry,
            settings.governance,
            "recommendations",
            mv.version,
            actor="bench",
            force=True,
            reason="bench",
        )
    promote(
        s.registry,
        settings.governance,
        "recommendations",
        versions[0],
        actor="bench",
        force=True,
        reason="bench",
    )
    s.registry.archive("recommendations", versions[1], actor="bench")
    s.models.refresh()
    print(f"setup in {time.perf_counter() - t0:.0f} s; model versions {versions} (one archived)")
    timings, receipts = [], []
    for u in range(args.erase):
        key = s.pseudonymizer.user(sim.user_id(u * 997 % args.users))
        r = erase(s.erasure_context(), key)
        timings.append(r.seconds)
        receipts.append(r.model_dump(mode="json"))
        print(f"erasure {u + 1}: {r.seconds:.2f} s, {sum(r.stores.values())} rows: {r.stores}")
    s.close()
    out = {
        "users": args.users,
        "events": n_events,
        "model_versions": len(versions),
        "erasure_seconds_median": round(statistics.median(timings), 3),
        "erasure_seconds_max": round(max(timings), 3),
        "rows_per_erasure_median": statistics.median(r["total"] for r in receipts),
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
