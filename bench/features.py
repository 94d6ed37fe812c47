"""Feature build speed: every feature for 1 M and 5 M simulated events, from the database.

    python bench/features.py [--sizes 1000000,5000000] [--budget 2000000]

For each size: simulated NetworkBuster events are written into a fresh SQLite database (setup,
not timed: pseudonymized rows inserted directly, no HTTP), then ``tastebud features build`` runs
in its own process and is timed end to end (load from the database, clean, sessionize, all user,
item and context features, statistics, storing the snapshot). Peak RSS is that process's
maximum resident set. Targets (issue 4): 1 M events in at most 20 s, and near-linear growth:
time(5 M) / time(1 M) at most 5.5. Prints the figures; the last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cryptography.fernet import Fernet

from tastebud.config import Settings
from tastebud.privacy import Pseudonymizer
from tastebud.services import build_services
from tastebud.simulator import SimConfig, Simulator

_CHILD = """
import json, resource, sys, time
from tastebud.config import Settings
from tastebud.features import FeatureBuildConfig, build_snapshot
from tastebud.services import build_services
services = build_services(Settings(), migrate=False)
t0 = time.perf_counter()
result = build_snapshot(services.store, as_of_ms=int(sys.argv[1]),
                        config=FeatureBuildConfig(memory_budget_events=int(sys.argv[2])))
seconds = time.perf_counter() - t0
print(json.dumps({"seconds": seconds, "users": result.n_users, "items": result.n_items,
                  "events": result.n_events, "partitions": result.partitions,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def populate(env: dict[str, str], n: int, seed: int) -> int:
    """Write n simulated events straight into the database; returns the as-of time (ms)."""
    settings = Settings(
        data_dir=env["TASTEBUD_DATA_DIR"],
        pseudonym_key=env["TASTEBUD_PSEUDONYM_KEY"],
        fernet_keys=env["TASTEBUD_FERNET_KEYS"],
    )
    services = build_services(settings, migrate=True)
    sim = Simulator(SimConfig(users=max(100, n // 115), items=20_000, days=30, seed=seed))
    services.catalog.put_items(list(sim.items()), 0)
    pseudo = Pseudonymizer(settings.pseudonym_key.get_secret_value().encode())  # type: ignore[union-attr]
    rows = []
    written = 0
    last_ms = 0
    for e in sim.events():
        ts = int(time.mktime(time.strptime(e["timestamp"][:19], "%Y-%m-%dT%H:%M:%S")) * 1000)
        ts -= time.timezone * 1000  # the simulator writes UTC
        last_ms = max(last_ms, ts)
        rows.append(
            (
                e["event_id"],
                e["event_type"],
                pseudo.user(e["user_id"]),
                None,
                e["session_id"],
                e.get("item_id"),
                ts,
                ts,
                "api",
                1,
                e.get("data"),
                e.get("context"),
            )
        )
        if len(rows) == 50_000:
            services.store.insert_event_rows(rows)
            written += len(rows)
            rows = []
            if written >= n:
                break
    if rows and written < n:
        services.store.insert_event_rows(rows[: n - written])
        written += min(len(rows), n - written)
    services.close()
    if written < n:
        raise SystemExit(f"the simulation produced only {written:,} events")
    return last_ms + 1


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="1000000,5000000")
    parser.add_argument("--budget", type=int, default=2_000_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    results: dict[int, dict[str, float]] = {}
    for n in sizes:
        tmp = Path(tempfile.mkdtemp(prefix=f"tb-bench-features-{n}-"))
        env = {k: v for k, v in os.environ.items() if not k.startswith("TASTEBUD_")}
        env.update(
            {
                "TASTEBUD_DATA_DIR": str(tmp),
                "TASTEBUD_LOG_LEVEL": "WARNING",
                "TASTEBUD_PSEUDONYM_KEY": secrets.token_hex(32),
                "TASTEBUD_FERNET_KEYS": Fernet.generate_key().decode(),
            }
        )
        t0 = time.perf_counter()
        as_of = populate(env, n, args.seed)
        print(f"{n:,} events written in {time.perf_counter() - t0:.0f} s (setup)", flush=True)
        child = subprocess.run(
            [sys.executable, "-c", _CHILD, str(as_of), str(args.budget)],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        r = json.loads(child.stdout.strip().splitlines()[-1])
        results[n] = r
        print(
            f"{n:,} events -> features for {r['users']:,} users and {r['items']:,} items in "
            f"{r['seconds']:.1f} s ({n / r['seconds']:,.0f} events/s, {r['partitions']} "
            f"partition(s)), peak RSS {r['peak_rss_mb']:,.0f} MB",
            flush=True,
        )
    small, large = sizes[0], sizes[-1]
    ratio = results[large]["seconds"] / results[small]["seconds"]
    print(f"growth: {large / small:.0f}x the events took {ratio:.2f}x the time")
    out = {
        "seconds_1m": round(results[small]["seconds"], 2),
        "seconds_5m": round(results[large]["seconds"], 2),
        "time_ratio_5m_1m": round(ratio, 3),
        "peak_rss_mb": round(max(r["peak_rss_mb"] for r in results.values())),
        "events_per_s_1m": round(small / results[small]["seconds"]),
        "events_per_s_5m": round(large / results[large]["seconds"]),
        "peak_rss_mb_1m": round(results[small]["peak_rss_mb"]),
        "peak_rss_mb_5m": round(results[large]["peak_rss_mb"]),
        "budget_events": args.budget,
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
