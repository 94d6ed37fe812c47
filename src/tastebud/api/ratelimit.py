"""Per-key rate limits: a token bucket per API key, sized by the key's scope.

The bucket is kept as GCRA (the "generic cell rate algorithm"): one number per key, the
*theoretical arrival time* ``tat`` of the next request. A request is allowed when
``tat + interval - burst <= now``; it then moves ``tat`` on by one ``interval`` (``1 / rate``).
This is exactly a token bucket of ``rate * burst_s`` tokens refilled at ``rate`` per second, but
refill and take are one comparison and one write.

Two backends, chosen by ``settings.redis_url`` like the real-time state:

* :class:`MemoryRateLimiter` (``memory://``): a dict in the process, under a microsecond a call.
* :class:`RedisRateLimiter` (``redis://``): every API process shares one bucket per key,
  ``tb:rl:<key id>`` (with a TTL), refilled and taken from atomically by a Lua script on the
  server's clock; a process takes a small lease of tokens per round trip (see the class). If
  Redis fails or does not answer within the request budget, the limiter fails *open*: it logs
  the error type (at most once a minute), stops asking Redis for a second and meanwhile limits
  with a per-process bucket of the same size, which never refuses what the shared bucket would
  have allowed, since each process sees only part of the key's traffic.

Both are called once per authenticated request; on the event loop through
:meth:`RateLimiter.acquire_async`, which never blocks it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

from tastebud.apikeys import Scope
from tastebud.config import RateLimits, Settings
from tastebud.monitoring import get_logger

__all__ = [
    "MemoryRateLimiter",
    "RateLimiter",
    "RedisRateLimiter",
    "make_rate_limiter",
]

_log = get_logger(__name__)


class RateLimiter(Protocol):
    """Takes one request from a key's bucket."""

    def acquire(self, key_id: str, scope: Scope) -> float:
        """Take one request for ``key_id``: ``0.0`` when allowed, otherwise the seconds until
        the next request would be allowed (nothing is taken)."""
        ...

    async def acquire_async(self, key_id: str, scope: Scope) -> float:
        """:meth:`acquire` for the event loop: any round trip is awaited, never blocking the
        loop, and for at most the request budget."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


def _rates(limits: RateLimits) -> dict[str, float]:
    return {"ingest": limits.ingest_per_s, "serve": limits.serve_per_s, "admin": limits.admin_per_s}


class MemoryRateLimiter:
    """One bucket per key in this process (``memory://``, or the fallback while Redis is down).

    Not locked: the auth dependency calls it on the event loop only, and under the GIL a lost
    update between two threads would only let one extra request through.

    Args:
        limits: Rates per scope and the bucket size.
        clock: Monotonic seconds (tests pass a fake clock).

    >>> limiter = MemoryRateLimiter(RateLimits(ingest_per_s=1.0, burst_s=2.0), clock=lambda: 0.0)
    >>> [limiter.acquire("k1", "ingest") for _ in range(3)]
    [0.0, 0.0, 1.0]
    >>> limiter.acquire("k2", "ingest")
    0.0
    """

    def __init__(self, limits: RateLimits, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._interval = {scope: 1.0 / rate for scope, rate in _rates(limits).items()}
        self._burst = limits.burst_s
        self._clock = clock
        self._tat: dict[str, float] = {}

    def acquire(self, key_id: str, scope: Scope) -> float:
        now = self._clock()
        tat = self._tat.get(key_id, now)
        new = (tat if tat > now else now) + self._interval[scope]
        wait = new - self._burst - now
        if wait > 1e-9:  # not 0: summed float intervals must not cost the burst's last request
            return wait
        self._tat[key_id] = new
        return 0.0

    async def acquire_async(self, key_id: str, scope: Scope) -> float:
        return self.acquire(key_id, scope)

    def close(self) -> None:
        self._tat.clear()


# KEYS[1] = tb:rl:<key id>; ARGV = interval ms, burst ms, tokens wanted. Takes as many tokens as
# the bucket holds, up to the number wanted, and returns how many (> 0), or minus the wait in ms.
# The server's clock (TIME) is the only clock, so API hosts with skewed clocks share fairly.
_GCRA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local interval, burst, want = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]))
if tat == nil or tat < now then tat = now end
local got = math.min(want, math.floor((now + burst - tat) / interval + 1e-6))
if got < 1 then return -math.max(1, math.ceil(tat + interval - burst - now)) end
local new = tat + got * interval
redis.call('SET', KEYS[1], string.format('%.3f', new), 'PX', math.ceil(new - now) + 1000)
return got
"""


class RedisRateLimiter:
    """One bucket per key in Redis, shared by every API process.

    A process takes tokens from the shared bucket a *lease* at a time: ``lease_s`` seconds of
    the key's rate (at least 1 token), which it then spends locally. At the default rates that
    is one round trip per 50 requests instead of one per request
    (measured on 2 busy cores: a round trip per request added 0.3 ms to every answer); keys
    limited below 200 requests/s go to Redis on every request. Leasing never lets more through
    than the shared bucket holds (tokens are taken before they are spent); it can only refuse a
    little early, while other processes hold unspent tokens (at most one lease each, which
    lapses after ``lease_ttl_s``).

    On the event loop, call :meth:`acquire_async`: a spent lease is renewed on a thread of the
    limiter's own, awaited at most ``timeout_s`` (the request budget,
    ``ServingConfig.realtime_budget_ms``), so a Redis that never answers holds up neither the
    loop nor the request beyond the budget. :meth:`acquire` does the same round trip in the
    calling thread, bounded by the same timeout (scripts, worker threads, tests).

    Args:
        url: ``redis://host:port/db``.
        limits: Rates per scope and the bucket size.
        lease_s: Tokens taken per round trip, in seconds of the rate (0: one at a time).
        lease_ttl_s: How long unspent leased tokens stay usable.
        timeout_s: Longest a round trip is waited for (also the connection's socket timeout).
        retry_s: After a Redis error or timeout, how long the per-process bucket stands in
            before Redis is asked again.
    """

    _LOG_EVERY_S = 60.0

    def __init__(
        self,
        url: str,
        limits: RateLimits,
        *,
        lease_s: float = 0.01,
        lease_ttl_s: float = 1.0,
        timeout_s: float = 0.25,
        retry_s: float = 1.0,
    ) -> None:
        import redis as redis_lib

        self._errors: tuple[type[Exception], ...] = (redis_lib.RedisError, OSError)
        self._no_script = redis_lib.exceptions.NoScriptError
        self._redis = redis_lib.Redis.from_url(
            url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s
        )
        # The digest is computed locally: nothing connects before the first request.
        self._script = self._redis.register_script(_GCRA)
        # Pre-encoded arguments and a bare EVALSHA: a few µs less per call than Script().
        burst_ms = repr(limits.burst_s * 1000.0).encode()
        self._args = {
            scope: (repr(1000.0 / rate).encode(), burst_ms, b"%d" % max(1, int(rate * lease_s)))
            for scope, rate in _rates(limits).items()
        }
        self._leases: dict[str, tuple[int, float]] = {}  # key id: (unspent tokens, usable until)
        self._renewals: dict[str, asyncio.Future[float]] = {}  # key id: its renewal in flight
        self._lease_ttl_s = lease_ttl_s
        self._local = MemoryRateLimiter(limits)
        self._timeout_s = timeout_s
        self._retry_s = retry_s
        self._down_until = 0.0
        self._next_log = 0.0
        self._pool: ThreadPoolExecutor | None = None

    def __repr__(self) -> str:
        return "RedisRateLimiter(<url hidden>)"

    def _spend_lease(self, key_id: str) -> bool:
        """Take one token of the key's unspent lease, if it has one."""
        lease = self._leases.get(key_id)
        if lease is not None and lease[0] > 0 and time.monotonic() < lease[1]:
            self._leases[key_id] = (lease[0] - 1, lease[1])
            return True
        return False

    def _redis_down(self) -> bool:
        """Whether the per-process bucket stands in (a failure less than ``retry_s`` ago)."""
        if self._down_until:
            if time.monotonic() < self._down_until:
                return True
            self._down_until = 0.0
        return False

    def _take(self, key_id: str, scope: Scope) -> int:
        """One round trip: tokens taken from the shared bucket (> 0), or minus the wait in ms."""
        key, args = f"tb:rl:{key_id}", self._args[scope]
        try:
            return int(self._redis.evalsha(self._script.sha, 1, key, *args))
        except self._no_script:  # a restarted or flushed Redis: load it again
            return int(self._script(keys=[key], args=args))

    def _add_lease(self, key_id: str, tokens: int) -> None:
        """Add ``tokens`` to the key's lease (unspent tokens still usable are kept)."""
        now = time.monotonic()
        lease = self._leases.get(key_id)
        unspent = lease[0] if lease is not None and now < lease[1] else 0
        self._leases[key_id] = (unspent + tokens, now + self._lease_ttl_s)

    def _granted(self, key_id: str, got: int) -> float:
        if got <= 0:
            return -got / 1000.0
        self._add_lease(key_id, got - 1)
        return 0.0

    def acquire(self, key_id: str, scope: Scope) -> float:
        if self._spend_lease(key_id):
            return 0.0
        if self._redis_down():
            return self._local.acquire(key_id, scope)
        try:
            got = self._take(key_id, scope)
        except self._errors as exc:
            self._failed(exc)
            return self._local.acquire(key_id, scope)
        return self._granted(key_id, got)

    async def acquire_async(self, key_id: str, scope: Scope) -> float:
        # Single flight: while one request renews a key's lease, the others of this process
        # wait for that renewal instead of each taking a lease of their own (at 2,000
        # requests/s, dozens at once emptied the shared bucket and refused far below the rate).
        while not self._spend_lease(key_id):
            if self._redis_down():
                return self._local.acquire(key_id, scope)
            renewal = self._renewals.get(key_id)
            if renewal is None or renewal.get_loop() is not asyncio.get_running_loop():
                renewal = asyncio.ensure_future(self._renew(key_id, scope))
                self._renewals[key_id] = renewal
            try:
                wait = await asyncio.wait_for(asyncio.shield(renewal), self._timeout_s)
            except self._errors as exc:  # TimeoutError (the budget) is an OSError
                self._failed(exc)
                return self._local.acquire(key_id, scope)
            if wait > 0.0:
                return wait
            # Tokens were added to the lease: spend one (if others took them all, renew again).
        return 0.0

    async def _renew(self, key_id: str, scope: Scope) -> float:
        """One round trip on the limiter's thread: tokens added to the key's lease (returns
        0.0) or the wait in seconds."""
        if self._pool is None:
            self._pool = ThreadPoolExecutor(2, thread_name_prefix="tastebud-ratelimit")
        try:
            got = await asyncio.wrap_future(self._pool.submit(self._take, key_id, scope))
        finally:
            self._renewals.pop(key_id, None)
        if got <= 0:
            return -got / 1000.0
        self._add_lease(key_id, got)
        return 0.0

    def _failed(self, exc: Exception) -> None:
        now = time.monotonic()
        self._down_until = now + self._retry_s
        if now >= self._next_log:
            self._next_log = now + self._LOG_EVERY_S
            # The type only: a message may spell out the URL, password included.
            _log.warning(
                "rate limiter cannot reach redis; limiting per process",
                error_type=type(exc).__name__,
            )

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
        self._redis.close()


def make_rate_limiter(settings: Settings) -> RateLimiter | None:
    """The limiter for a deployment: ``None`` when ``rate_limits.enabled`` is off, Redis-shared
    when ``redis_url`` is a Redis URL (a round trip waited for at most
    ``serving.realtime_budget_ms``), per process otherwise."""
    limits = settings.rate_limits
    if not limits.enabled:
        return None
    if settings.redis_url.startswith(("redis://", "rediss://", "unix://")):
        budget_s = settings.serving.realtime_budget_ms / 1000
        return RedisRateLimiter(settings.redis_url, limits, timeout_s=budget_s)
    return MemoryRateLimiter(limits)
