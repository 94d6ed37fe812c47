"""Micro-benchmarks of the rate limiter: the figures tests used to assert as timing targets
(issue 16, point 7: a test asserts behaviour; a duration is measured here).

    python bench/micro.py                                      # no Redis server needed
    python bench/micro.py --redis redis://127.0.0.1:6379/15    # also the shared bucket

1. ``MemoryRateLimiter.acquire``: microseconds per call, ``--calls`` calls on one key at the
   default limits, best of ``--repeat`` runs (target: under 10 µs; about 0.3 µs measured when
   it was a test).
2. ``RedisRateLimiter`` failing open, with ``timeout_s=0.2`` (the test's setting): seconds for
   the first ``acquire`` (which asks Redis, fails and answers from the per-process bucket) when
   Redis is (a) a port that accepts and closes every connection, (b) a port nobody listens on;
   then microseconds per call while the per-process bucket stands in. Target: the first call
   under 0.5 s, each following one under 10 µs.
3. With ``--redis``: ``RedisRateLimiter.acquire`` against the real server, microseconds per call
   at the default serving limit (a lease of 50 tokens per round trip) and with ``lease_s=0``
   (one round trip per call), on keys of its own (``tb:rl:bench-*``, deleted afterwards).

Prints the figures; the last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import socket
import threading
import time
from collections.abc import Callable
from functools import partial
from typing import Any

from tastebud.api.ratelimit import MemoryRateLimiter, RedisRateLimiter
from tastebud.config import RateLimits
from tastebud.monitoring import configure_logging


def per_call_us(call: Callable[[], object], calls: int, repeat: int) -> float:
    """Best of ``repeat`` runs of ``calls`` calls, in microseconds per call."""
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        for _ in range(calls):
            call()
        best = min(best, time.perf_counter() - started)
    return best / calls * 1e6


class ClosingPort:
    """A port that accepts every connection and closes it at once (a broken Redis)."""

    def __init__(self) -> None:
        self._socket = socket.create_server(("127.0.0.1", 0))
        self._socket.settimeout(0.05)
        self.port = self._socket.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._socket.accept()
            except TimeoutError:
                continue
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self._socket.close()


def unused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def fail_open(port: int, calls: int, repeat: int) -> tuple[float, float]:
    """(seconds of the first call, µs per following call) against a Redis on ``port`` that
    does not answer."""
    limiter = RedisRateLimiter(
        f"redis://127.0.0.1:{port}/0", RateLimits(), timeout_s=0.2, retry_s=600.0
    )
    started = time.perf_counter()
    assert limiter.acquire("bench-key", "serve") == 0.0
    first_s = time.perf_counter() - started
    us = per_call_us(lambda: limiter.acquire("bench-key", "serve"), calls, repeat)
    limiter.close()
    return first_s, us


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--calls", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--redis", help="a Redis URL for the shared bucket's figures")
    args = ap.parse_args()
    configure_logging("WARNING")  # the limiter's warning when Redis fails goes to stderr
    out: dict[str, Any] = {}

    memory = MemoryRateLimiter(RateLimits())
    out["memory_us_per_call"] = round(
        per_call_us(lambda: memory.acquire("0123456789ab", "serve"), args.calls, args.repeat), 3
    )
    print(f"MemoryRateLimiter.acquire: {out['memory_us_per_call']} µs per call (target < 10)")

    closing = ClosingPort()
    first_s, us = fail_open(closing.port, args.calls // 10, args.repeat)
    closing.close()
    out["fail_open_closed_first_s"] = round(first_s, 4)
    out["fail_open_closed_us_per_call"] = round(us, 3)
    first_s, us = fail_open(unused_port(), args.calls // 10, args.repeat)
    out["fail_open_refused_first_s"] = round(first_s, 4)
    out["fail_open_refused_us_per_call"] = round(us, 3)
    for kind in ("closed", "refused"):
        print(
            f"Redis {kind}: first call {out[f'fail_open_{kind}_first_s']} s (target < 0.5), "
            f"then {out[f'fail_open_{kind}_us_per_call']} µs per call"
        )

    if args.redis:
        import redis

        client = redis.Redis.from_url(args.redis)
        for name, lease_s in (("leased", 0.01), ("per_call", 0.0)):
            limiter = RedisRateLimiter(args.redis, RateLimits(), lease_s=lease_s)
            key = f"bench-{name}"
            # Within the bucket: a calm key at the default rate (5,000/s) is never refused.
            calls = min(args.calls // 10, 2_000)
            out[f"redis_{name}_us_per_call"] = round(
                per_call_us(partial(limiter.acquire, key, "serve"), calls, args.repeat), 2
            )
            limiter.close()
            client.delete(f"tb:rl:{key}")
            print(f"RedisRateLimiter ({name}): {out[f'redis_{name}_us_per_call']} µs per call")
        client.close()

    print(json.dumps(out))


if __name__ == "__main__":
    main()
