"""Hot swaps: how long after a promotion (or a rollback) every API process serves the new
production version (the figure ``tests/test_jobs.py`` used to assert, issue 16, point 7).

    python bench/hotswap.py                    # 2 servers, 5 promotions and 5 rollbacks
    python bench/hotswap.py --swaps 10 --poll 2

1. Setup (not timed): a fresh data directory (SQLite); the simulator's catalogue, users and
   traffic (``--users`` users, 200 items, 20 days, seed 3, as in the test); ``tastebud_seq``
   untuned trained on the first three quarters of the traffic (v1), then on all of it (v2), by
   the training jobs; an admin key and a serve key. The governance floor is the test's
   (``min_ndcg10_over_popularity`` 0.8: an untuned model on 150 users ranks about as well as
   popularity).
2. ``--servers`` real ``tastebud serve`` processes (one API process each) on the same data, with
   ``TASTEBUD_MODEL_POLL_SECONDS=--poll``. Through the first one's API: v1 and v2 approved, v1
   promoted to production (the bias analysis waived: 150 users make no two groups of 50).
3. Timed, ``--swaps`` times: promote v2 through the first server's API, then roll back to v1;
   each swap is the time from the API's answer until every server answers
   ``GET /v1/users/{id}/recommendations`` with ``X-Tastebud-Model: recommendations/vN`` (each
   server asked every 20 ms). Meanwhile a loop asks every server for recommendations without
   pause; a failed request is counted.

Target: every swap under 10 s with ``--poll 1``, and no failed request. Prints the figures; the
last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import secrets
import statistics
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
from _server import clean_env, start_server  # bench/_server.py (the script directory)
from cryptography.fernet import Fernet

from tastebud.config import Settings
from tastebud.services import build_services
from tastebud.simulator import SimConfig, Simulator
from tastebud.training.jobs import train_recommendations
from tastebud.worker import job_context

MODEL = "recommendations"
GOVERNANCE = {"min_ndcg10_over_popularity": 0.8}
WAIVE = {"waive": ["bias_analysis"], "reason": "bench: 150 simulated users"}


def prepare(data_dir: Path, users: int) -> tuple[dict[str, str], str, str, str]:
    """The data, v1 and v2, and the keys: (secrets, admin key, serve key, a user to ask)."""
    keys = {
        "pseudonym_key": secrets.token_hex(32),
        "fernet_keys": Fernet.generate_key().decode(),
    }
    settings = Settings(data_dir=data_dir, governance=GOVERNANCE, **keys)
    services = build_services(settings, migrate=True)
    sim = Simulator(SimConfig(users=users, items=200, days=20, seed=3))
    services.catalog.put_items(list(sim.items()), 0)
    services.catalog.put_users(list(sim.users()), 0)
    events = sorted(sim.events(), key=lambda e: e["timestamp"])
    cut = len(events) * 3 // 4
    ctx = job_context(services, "bench")
    for part in (events[:cut], events[cut:]):
        for i in range(0, len(part), 5000):
            services.ingestor.ingest(part[i : i + 5000], source="import")
        train_recommendations(ctx, model="tastebud_seq", tuning=False)
    admin = services.keys.create("bench-admin", "admin")[1]
    serve = services.keys.create("bench-serve", "serve")[1]
    services.close()
    user = Counter(e["user_id"] for e in events).most_common(1)[0][0]  # the most active
    return keys, admin, serve, user


class Loop:
    """Asks every server for recommendations until stopped; counts answers and failures."""

    def __init__(self, urls: list[str], key: str, user: str) -> None:
        self.urls, self.user = urls, user
        self.headers = {"Authorization": f"Bearer {key}"}
        self.answers = 0
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(timeout=10) as client:
            while not self._stop.is_set():
                for url in self.urls:
                    try:
                        r = client.get(
                            f"{url}/v1/users/{self.user}/recommendations?k=5", headers=self.headers
                        )
                    except httpx.HTTPError as exc:
                        self.errors.append(type(exc).__name__)
                        continue
                    if r.status_code != 200:
                        self.errors.append(str(r.status_code))
                    self.answers += 1

    def __enter__(self) -> Loop:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def until_serving(urls: list[str], key: str, user: str, version: int, limit: float) -> float:
    """Seconds until every server answers with ``version``."""
    t0 = time.perf_counter()
    want = f"{MODEL}/v{version}"
    pending = list(urls)
    with httpx.Client(timeout=10, headers={"Authorization": f"Bearer {key}"}) as client:
        while pending:
            pending = [
                url
                for url in pending
                if client.get(f"{url}/v1/users/{user}/recommendations?k=5").headers.get(
                    "X-Tastebud-Model"
                )
                != want
            ]
            if pending and time.perf_counter() - t0 > limit:
                raise SystemExit(f"not serving {want} after {limit} s: {pending}")
            if pending:
                time.sleep(0.02)
    return time.perf_counter() - t0


def admin_call(url: str, key: str, path: str, body: dict[str, Any]) -> None:
    r = httpx.post(f"{url}{path}", json=body, headers={"Authorization": f"Bearer {key}"})
    if r.status_code != 200:
        raise SystemExit(f"POST {path}: {r.status_code} {r.text[:500]}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--servers", type=int, default=2)
    ap.add_argument("--swaps", type=int, default=5, help="promotions (and as many rollbacks)")
    ap.add_argument("--poll", type=float, default=1.0, help="TASTEBUD_MODEL_POLL_SECONDS")
    ap.add_argument("--users", type=int, default=150)
    ap.add_argument("--limit", type=float, default=120.0, help="give up a swap after (s)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="tastebud-hotswap-") as tmp:
        data_dir = Path(tmp) / "data"
        t0 = time.perf_counter()
        keys, admin, serve, user = prepare(data_dir, args.users)
        print(f"setup: {args.users} users, v1 and v2 trained in {time.perf_counter() - t0:.1f} s")
        env = clean_env(
            TASTEBUD_DATA_DIR=str(data_dir),
            TASTEBUD_PSEUDONYM_KEY=keys["pseudonym_key"],
            TASTEBUD_FERNET_KEYS=keys["fernet_keys"],
            TASTEBUD_GOVERNANCE=json.dumps(GOVERNANCE),
            TASTEBUD_MODEL_POLL_SECONDS=str(args.poll),
            TASTEBUD_LOG_LEVEL="WARNING",
        )
        servers = [start_server(env, 1, Path(tmp) / f"server-{i}.log") for i in range(args.servers)]
        urls = [url for _, url in servers]
        try:
            base = f"/v1/models/{MODEL}"
            for version in (1, 2):
                admin_call(urls[0], admin, f"{base}/versions/{version}/approve", {"reason": "b"})
            admin_call(urls[0], admin, f"{base}/versions/1/promote", WAIVE)
            until_serving(urls, serve, user, 1, args.limit)
            promotions: list[float] = []
            rollbacks: list[float] = []
            with Loop(urls, serve, user) as loop:
                for _ in range(args.swaps):
                    admin_call(urls[0], admin, f"{base}/versions/2/promote", WAIVE)
                    promotions.append(until_serving(urls, serve, user, 2, args.limit))
                    admin_call(urls[0], admin, f"{base}/rollback", {"reason": "bench"})
                    rollbacks.append(until_serving(urls, serve, user, 1, args.limit))
        finally:
            for server, _ in servers:
                server.terminate()
                server.wait(30)
    swaps = promotions + rollbacks
    for name, values in (("promotion", promotions), ("rollback", rollbacks)):
        print(
            f"{name}: median {statistics.median(values):.2f} s, max {max(values):.2f} s "
            f"over {len(values)} (poll {args.poll} s, {args.servers} servers)"
        )
    print(f"requests during the swaps: {loop.answers}, failed: {len(loop.errors)}")
    print(
        json.dumps(
            {
                "servers": args.servers,
                "poll_s": args.poll,
                "swaps": len(swaps),
                "promotion_median_s": round(statistics.median(promotions), 3),
                "rollback_median_s": round(statistics.median(rollbacks), 3),
                "max_s": round(max(swaps), 3),
                "requests": loop.answers,
                "failed_requests": len(loop.errors),
            }
        )
    )


if __name__ == "__main__":
    main()
