"""Simulator speed: how long ``tastebud simulate`` takes to write N million events as NDJSON.

    python bench/simulate.py [--users 85000] [--days 30] [--workers 2]

The defaults produce about 10.2 million events (issue 3 asks for 10 million in well under
5 minutes on 2 cores). The floor is the 300 s limit itself. Prints the figures; the last line
is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

from tastebud.simulator import SimConfig, Simulator, write_ndjson


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--users", type=int, default=85_000)
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "events.ndjson"
        t0 = time.perf_counter()
        sim = Simulator(
            SimConfig(users=args.users, items=args.items, days=args.days, seed=args.seed)
        )
        with out.open("wb") as fh:
            n = write_ndjson(sim, fh, workers=args.workers)
        seconds = time.perf_counter() - t0
        size = out.stat().st_size
    peak_mb = (
        max(
            resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
            resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
        )
        / 1024
    )
    print(
        f"{n:,} events ({size / 1e9:.2f} GB NDJSON) in {seconds:.1f} s = "
        f"{n / seconds:,.0f} events/s with {args.workers} workers; peak RSS {peak_mb:,.0f} MB"
    )
    print(f"time for 10 million at this rate: {10e6 / (n / seconds):.0f} s (limit 300 s)")
    print(
        json.dumps(
            {
                "events": n,
                "seconds": round(seconds, 1),
                "events_per_s": round(n / seconds),
                "seconds_per_10m": round(10e6 / (n / seconds), 1),
                "ratio_to_limit": round(10e6 / (n / seconds) / 300, 3),
                "peak_rss_mb": round(peak_mb),
            }
        )
    )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
