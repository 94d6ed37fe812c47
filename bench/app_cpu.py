"""CPU per recommendation of the API itself, without HTTP: the ASGI app called in-process.

    python bench/app_cpu.py                                   # 10,000 users x 2,000 items
    python bench/app_cpu.py --users 100000 --items 20000      # the size of bench/serve.py
    PYTHONPATH=/path/to/other/checkout/src python bench/app_cpu.py   # another version, same data

1. Setup (not timed): the deployment of ``bench/serve.py`` (its ``build_deployment``: catalogue,
   simulated interactions, ALS with 64 factors in production, a serve key), Redis db 14 as the
   real-time backend, impressions logged.
2. The app of ``tastebud serve`` (``create_app_from_env``, its lifespan started), called
   directly with ASGI messages, one request at a time: ``--requests`` of the bench's mix (70 %
   known users, 30 % users the model never saw), after 300 warm-up requests.
3. ``app_cpu_us``: process CPU (every thread: the real-time readers and the impression writer
   count) per request; ``app_wall_us``: wall time per request (Redis round trips included).

Where ``bench/serve.py`` measures a server under load (HTTP, two processes, concurrency), this
isolates the Python work of one answer, which is what a change to the request path changes.
Prints the figures; the last line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import serve  # noqa: E402  (bench/serve.py: the deployment)

REDIS_DEFAULT = "redis://127.0.0.1:6379/14"


async def drive(app: Any, key: bytes, paths: list[str]) -> tuple[float, float]:
    """Start the app's lifespan, send ``paths`` one by one; (wall, CPU) seconds per request."""
    lifespan: asyncio.Queue[dict[str, str]] = asyncio.Queue()
    await lifespan.put({"type": "lifespan.startup"})
    started: list[dict[str, Any]] = []

    async def send_lifespan(message: dict[str, Any]) -> None:
        started.append(message)

    task = asyncio.create_task(
        app(
            {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}},
            lifespan.get,
            send_lifespan,
        )
    )
    while not started:
        await asyncio.sleep(0.01)
    if started[0]["type"] != "lifespan.startup.complete":
        raise SystemExit(f"the app did not start: {started[0]}")

    async def call(path: str) -> int:
        status = 0

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]

        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"k=10",
            "root_path": "",
            "headers": [(b"host", b"bench"), (b"authorization", b"Bearer " + key)],
            "client": ("127.0.0.1", 1),
            "server": ("127.0.0.1", 80),
            "state": {},
        }
        await app(scope, receive, send)
        return status

    for path in paths[:300]:
        if (status := await call(path)) != 200:
            raise SystemExit(f"warm-up answered {status}")
    wall, cpu = time.perf_counter(), time.process_time()
    for path in paths[300:]:
        await call(path)
    n = len(paths) - 300
    result = ((time.perf_counter() - wall) / n, (time.process_time() - cpu) / n)
    await lifespan.put({"type": "lifespan.shutdown"})
    await task
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=10_000)
    ap.add_argument("--items", type=int, default=2_000)
    ap.add_argument("--requests", type=int, default=5_000)
    ap.add_argument("--redis-url", default=REDIS_DEFAULT)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    deployment = argparse.Namespace(
        users=args.users,
        items=args.items,
        per_user=50.0,
        factors=64,
        seed=args.seed,
        redis_url=args.redis_url,
    )
    tmp = Path(tempfile.mkdtemp(prefix="tastebud-app-cpu-"))
    deploy = serve.build_deployment(deployment, tmp)
    os.environ.update(serve.server_settings(args.redis_url, tmp, deploy))
    from tastebud.api.app import create_app_from_env

    app = create_app_from_env()
    rng = np.random.default_rng(args.seed)
    paths = [
        f"/v1/users/nb-user-{int(rng.integers(args.users)):07d}/recommendations"
        if rng.random() < 0.7
        else f"/v1/users/new-{n}/recommendations"
        for n in range(args.requests + 300)
    ]
    wall, cpu = asyncio.run(drive(app, deploy["serve_key"].encode(), paths))
    import tastebud

    print(
        f"{args.requests:,} recommendations, one at a time, {args.users:,} users x "
        f"{args.items:,} items: {cpu * 1e6:,.0f} us of CPU and {wall * 1e6:,.0f} us of wall "
        f"time per request ({tastebud.__file__})"
    )
    out = {
        "app_cpu_us": round(cpu * 1e6, 1),
        "app_wall_us": round(wall * 1e6, 1),
        "requests": args.requests,
        "users": args.users,
        "items": args.items,
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
