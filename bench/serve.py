"""Serving capacity: the real server's recommendations under open-loop load, beside ``/healthz``
and beside Cornac's own server on the same data.

    python bench/serve.py                                  # 100k users x 20k items, 64 factors
    python bench/serve.py --users 10000 --items 2000 --seconds 5 --p99-seconds 10   # quick run

1. Setup (not timed): a fresh data directory (SQLite) and Redis db 14 (flushed); a catalogue of
   ``--items`` items (the 50 taste categories of the simulation, publication dates spread over
   the last year, so about 4 % are "new" exploration candidates); seeded synthetic interactions
   of ``--users`` users (the ``Simulation`` of ``bench/incremental.py``: Zipf popularity, two
   favourite categories per user, log-normal activity with mean ``--per-user`` events), keyed by
   the deployment's pseudonym of ``nb-user-NNNNNNN``; ``fit_recommender(pairs, "als",
   {"factors": 64})``; saved with its training items and a popularity cold-start list,
   registered and promoted to production. A serve key and an ingest key.
2. The real server: ``tastebud serve --workers 2`` (uvicorn, one API process per core) on
   127.0.0.1 with the Redis real-time backend and impressions logged (the default). The
   server's environment sets ``OPENBLAS_NUM_THREADS``, ``OMP_NUM_THREADS`` and
   ``MKL_NUM_THREADS`` to 1, as a deployment on a small box must; ``--no-blas-limit`` runs
   without them.
3. ``--session-users`` session-only users (raw ids the model never saw) get 3 ``page_view``
   events each through ``POST /v1/events/batch``: live state in Redis, no factors.
4. The peer (unless ``--no-peer``): Cornac (``pip install -e '.[bench]'``), model
   ``cornac.models.BPR`` with ``k=--factors`` trained on the very same pairs (raw user ids,
   ``--peer-iterations`` epochs), saved with its train set (``model.save(dir,
   save_trainset=True)``) and served by Cornac's own Flask app, ``cornac.serving.app``, under
   gunicorn as Cornac's Docker image runs it (``gunicorn app:app``), with ``--workers 2`` sync
   workers (one per core, as Tastebud's two API processes) and the same one-BLAS-thread
   environment. Its endpoint: ``GET /recommend?uid=nb-user-NNNNNNN&k=10&remove_seen=true``
   (training items excluded, as Tastebud excludes them). Cornac answers 500 for a user it never
   saw, so its mix is known users only; gunicorn's sync workers close the connection after each
   answer, so each of its requests pays a TCP connect (the generator reconnects; that is the
   peer as deployed).
5. Load: a separate process (this script with ``--load-spec``; asyncio on uvloop with a minimal
   HTTP/1.1 client over ``--connections`` connections, keep-alive unless the server closes, to
   keep the generator's own share of the 2 cores small; its CPU is reported) sends requests open
   loop: request ``i`` is due at ``t0 + i / rate`` and its latency is measured from that time,
   so a stall is counted (a request more than ``--timeout`` behind is an error). Tastebud's mix:
   ``GET /v1/users/{id}/recommendations?k=10`` for 70 % known users (uniform over the model's
   users), 15 % new users (fresh raw ids), 15 % session-only users (uniform over the pool of
   step 3). Errors: non-200, transport errors and timeouts. A rate is *sustained* when a run of
   ``--seconds`` at it has p99 <= 50 ms and no error.
6. p99 at 300 requests/s: one run of ``--p99-seconds`` (default 60) of the recommendations mix
   (``p99_ms_at_300``; the ``*_at_300`` keys are this run's).
7. Highest sustained rate, for three targets searched in the same run, their steps interleaved
   (recommendations, ``/healthz`` of the same server (no key, no work: the floor), Cornac's
   ``/recommend``), so that all three see the same machine: from ``--start-rate`` the rate
   doubles until a run fails (halves if the first one fails), then bisects the bracket
   [highest sustained, lowest failed] at its geometric middle until hi / lo <= 1.05.
   ``max_sustained_rps`` is the bracket's low end (``*_upper_rps`` its high end, null when
   ``--max-rate`` was sustained). After each run the bench waits until the server it loaded is
   idle again (a handler runs to its end after its client gave up). Each run line also gives the
   server's CPU (per process), the generator's, and what everything else on the shared machine
   (other jobs, and the other server's idle work) used in the same seconds (``/proc/stat``).
8. Freshness: for ``--fresh-users`` known users, read the list, send a ``page_view`` of its first
   item to ``POST /v1/events``, then read the list every 2 ms (up to 2 s) until that item is gone
   (consumed items are excluded); freshness is from the 202 to the first response without it.
   Measured idle and again under a background load of 300 requests/s (the generator above);
   ``freshness_p99_ms`` is the one under load.

With ``--profile-dir DIR``, at the end: one more run at 300 requests/s with py-spy (``--gil``)
on each API process, speedscope files in DIR and the top functions printed.

Targets (2 cores): p99 <= 15 ms at 300 requests/s; ``floor_ratio`` (recommendations' sustained
rate over ``/healthz``'s) >= 0.7; at least 5 x Cornac's sustained rate; >= 1,000 requests/s
wherever ``/healthz`` sustains >= 1,400 (on a machine too busy for that, the floor says so).
Prints the figures; the last line is one flat JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import importlib.util
import json
import math
import os
import pkgutil
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from _server import clean_env, free_port
from _server import cpu_by_process as proc_cpu
from _server import start_server as start

REDIS_DEFAULT = "redis://127.0.0.1:6379/14"
DAY_MS = 86_400_000
P99_LIMIT_MS = 50.0
KNOWN, NEW, SESSION = 0, 1, 2
CLASSES = ("known", "new", "session")
OK, HTTP_ERROR, TIMEOUT, TRANSPORT = 0, 1, 2, 3


# -- load generator (runs in its own process) ---------------------------------------------------
def nearest_rank(sorted_values: np.ndarray, q: float) -> float:
    if len(sorted_values) == 0:
        return float("nan")
    return float(sorted_values[max(0, int(np.ceil(q * len(sorted_values))) - 1)])


def summarize(lat_ms: np.ndarray) -> dict[str, float]:
    s = np.sort(lat_ms)
    return {
        "p50_ms": nearest_rank(s, 0.50),
        "p95_ms": nearest_rank(s, 0.95),
        "p99_ms": nearest_rank(s, 0.99),
        "max_ms": float(s[-1]) if len(s) else float("nan"),
    }


async def _fetch(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
) -> tuple[int, bytes, bytes]:
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    lower = head.lower()
    at = lower.find(b"\r\ncontent-length:")
    if at < 0:
        raise ValueError("response without content-length")
    end = lower.find(b"\r\n", at + 2)
    body = await reader.readexactly(int(lower[at + 17 : end]))
    return status, lower, body


async def _load(spec: dict[str, Any]) -> dict[str, Any]:
    host, port, rate = spec["host"], spec["port"], float(spec["rate"])
    n = int(rate * spec["seconds"])
    timeout = spec["timeout"]
    rng = np.random.default_rng(spec["seed"])
    kind = rng.choice(3, size=n, p=spec["mix"])
    known = rng.integers(0, spec["known_users"], n)
    session = rng.integers(0, max(1, spec["session_users"]), n)
    auth = f"Authorization: Bearer {spec['key']}\r\n" if spec.get("key") else ""
    requests: list[bytes] = []
    for i in range(n):
        if spec["path"] == "healthz":
            path = "/healthz"
        else:
            if kind[i] == KNOWN:
                user = f"nb-user-{int(known[i]):07d}"
            elif kind[i] == NEW:
                user = f"nb-new-{spec['seed']}-{i}"
            else:
                user = f"nb-sess-{int(session[i]):05d}"
            if spec["path"] == "cornac":
                path = f"/recommend?uid={user}&k=10&remove_seen=true"
            else:
                path = f"/v1/users/{user}/recommendations?k=10"
        requests.append(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n{auth}\r\n".encode())
    lat = np.full(n, np.nan)
    service = np.full(n, np.nan)
    lag = np.full(n, np.nan)
    status = np.zeros(n, np.int8)
    codes: dict[int, int] = {}
    hits = np.zeros(n, bool)
    modes: dict[str, int] = {}
    perf = time.perf_counter
    t0 = perf() + 0.3
    cursor = [0]

    async def worker() -> None:
        reader = writer = None
        while True:
            i = cursor[0]
            cursor[0] += 1
            if i >= n:
                break
            due = t0 + i / rate
            delay = due - perf()
            if delay > 0:
                await asyncio.sleep(delay)
            start = perf()
            lag[i] = start - due
            left = due + timeout - start
            try:
                if left <= 0:
                    raise TimeoutError
                if writer is None:
                    reader, writer = await asyncio.wait_for(
                        asyncio.open_connection(host, port), left
                    )
                assert reader is not None
                code, head, body = await asyncio.wait_for(
                    _fetch(reader, writer, requests[i]), due + timeout - perf()
                )
                if code == 200:
                    hits[i] = b"x-tastebud-cache: hit" in head
                    at = body.find(b'"mode":"')
                    if at >= 0:
                        mode = body[at + 8 : body.find(b'"', at + 8)].decode()
                        key = f"{CLASSES[kind[i]]}:{mode}"
                        modes[key] = modes.get(key, 0) + 1
                else:
                    status[i] = HTTP_ERROR
                    codes[code] = codes.get(code, 0) + 1
                if b"\r\nconnection: close" in head:  # gunicorn's sync workers, for one
                    writer.close()
                    reader = writer = None
            except TimeoutError:
                status[i] = TIMEOUT
                if writer is not None:
                    writer.close()
                reader = writer = None
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
                status[i] = TRANSPORT
                if writer is not None:
                    writer.close()
                reader = writer = None
            done = perf()
            lat[i] = (done - due) * 1000
            service[i] = (done - start) * 1000
        if writer is not None:
            writer.close()

    cpu0, wall0 = time.process_time(), perf()
    await asyncio.gather(*(worker() for _ in range(spec["connections"])))
    wall = perf() - wall0
    cpu = time.process_time() - cpu0
    out: dict[str, Any] = {
        "rate": rate,
        "requests": n,
        **summarize(lat),
        "errors": int((status != OK).sum()),
        "http_errors": int((status == HTTP_ERROR).sum()),
        "answered": int(((status == OK) | (status == HTTP_ERROR)).sum()),
        "timeouts": int((status == TIMEOUT).sum()),
        "transport_errors": int((status == TRANSPORT).sum()),
        "status_codes": {str(k): v for k, v in codes.items()},
        "service_p50_ms": nearest_rank(np.sort(service), 0.5),
        "service_p99_ms": nearest_rank(np.sort(service), 0.99),
        "lag_p50_ms": nearest_rank(np.sort(lag), 0.5) * 1000,
        "lag_p99_ms": nearest_rank(np.sort(lag), 0.99) * 1000,
        "generator_cpu": cpu / wall,
        "wall_s": wall,
        "cache_hit_share": float(hits.mean()) if n else 0.0,
        "modes": modes,
    }
    if spec["path"] == "recommendations":
        for c, name in enumerate(CLASSES):
            mask = kind == c
            if mask.any():
                s = np.sort(lat[mask])
                out[f"{name}_p50_ms"] = nearest_rank(s, 0.5)
                out[f"{name}_p99_ms"] = nearest_rank(s, 0.99)
    return out


def load_main(spec: dict[str, Any]) -> None:
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover - uvloop ships with uvicorn[standard]
        pass
    print(json.dumps(asyncio.run(_load(spec))), flush=True)


def load_cmd(spec: dict[str, Any]) -> list[str]:
    return [sys.executable, __file__, "--load-spec", json.dumps(spec)]


def run_load(spec: dict[str, Any]) -> dict[str, Any]:
    r = subprocess.run(load_cmd(spec), capture_output=True, text=True, check=False)
    if r.returncode != 0:
        raise SystemExit(f"load generator failed: {r.stderr[-2000:]}")
    return dict(json.loads(r.stdout.strip().splitlines()[-1]))


# -- setup ------------------------------------------------------------------------------------
def cpu_by_process(pid: int) -> dict[int, float]:
    """CPU seconds (user + system) of a process and of each of its direct children."""
    return {p: user + system for p, (user, system) in proc_cpu(pid).items()}


def machine_busy() -> float:
    """CPU seconds all cores spent busy since boot (``/proc/stat``)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def kernel_cpu(pid: int) -> float:
    """System (kernel) CPU seconds of a process and its direct children."""
    return sum(system for _, system in proc_cpu(pid).values())


def tree_cpu(pid: int) -> float:
    """CPU seconds of a process and its direct children."""
    return sum(cpu_by_process(pid).values())


def worker_cores(before: dict[int, float], after: dict[int, float], wall: float) -> list[float]:
    """Cores used by each child process between two readings, busiest first."""
    return sorted(((after[p] - before.get(p, 0.0)) / wall for p in after), reverse=True)


def wait_idle(pid: int, limit_s: float = 120.0) -> float:
    """Wait until the server has worked off what timed-out requests left queued (a handler
    runs to the end after its client gave up): under 0.1 core for a second. Returns the wait."""
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < limit_s:
        c0 = tree_cpu(pid)
        time.sleep(1.0)
        if tree_cpu(pid) - c0 < 0.1:
            break
    return time.perf_counter() - t0


def public(name: str, *packages: str) -> Any:
    """``name`` from the first of ``packages`` that has it, else from their modules (src/ is
    reorganised now and then: the bench follows the name, not the module path)."""
    for package in packages:
        found = getattr(importlib.import_module(package), name, None)
        if found is not None:
            return found
    for package in packages:
        path = getattr(importlib.import_module(package), "__path__", [])
        for info in pkgutil.iter_modules(path, package + "."):
            found = getattr(importlib.import_module(info.name), name, None)
            if found is not None:
                return found
    raise SystemExit(f"{name} is in none of {', '.join(packages)}: find where it went (grep)")


def build_deployment(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    """Catalogue, model (registered and in production) and keys; returns what the server and
    the clients need."""
    import polars as pl
    import redis
    from cryptography.fernet import Fernet
    from incremental import N_CATS, Simulation  # bench/incremental.py (script dir on sys.path)

    from tastebud.config import Settings
    from tastebud.services import build_services

    promote = public("promote", "tastebud.registry")
    save_model = public("save_model", "tastebud.training", "tastebud.registry")
    fit_recommender = public("fit_recommender", "tastebud.training")

    redis.Redis.from_url(args.redis_url).flushdb()
    secrets_env = {
        "pseudonym_key": secrets.token_hex(32),
        "fernet_keys": Fernet.generate_key().decode(),
    }
    settings = Settings(data_dir=tmp / "data", redis_url=args.redis_url, **secrets_env)
    services = build_services(settings, migrate=True)
    try:
        now_ms = services.now_ms()
        t = time.perf_counter()
        sim = Simulation(args.users, args.items, args.seed)
        rng = np.random.default_rng(args.seed + 1)
        created = now_ms - (rng.random(args.items) * 365 * DAY_MS).astype(np.int64)
        items = [
            {
                "item_id": f"nb-item-{j:06d}",
                "title": f"Item {j}",
                "category": f"category-{int(sim.item_cat[j]):02d}",
                "created_at": datetime.fromtimestamp(int(created[j]) / 1000, UTC).isoformat(),
            }
            for j in range(args.items)
        ]
        for lo in range(0, len(items), 5000):
            out = services.catalog.put_items(items[lo : lo + 5000], now_ms)
            bad = [r for r in out.results if r.status == "rejected"]
            if bad:
                raise SystemExit(f"catalogue rejected: {bad[0]}")
        sigma = 0.8
        counts = np.maximum(
            1, np.round(sim.rng.lognormal(np.log(args.per_user) - sigma**2 / 2, sigma, args.users))
        ).astype(np.int64)
        u, i, ts = sim.events(
            np.arange(args.users), counts, sim.fav, now_ms - 90 * DAY_MS, now_ms - DAY_MS
        )
        keys = pl.DataFrame(
            {
                "u": np.arange(args.users, dtype=np.int64),
                "user_key": [
                    services.pseudonymizer.user(f"nb-user-{k:07d}") for k in range(args.users)
                ],
            }
        )
        grouped = (
            pl.DataFrame({"u": u.astype(np.int64), "i": i.astype(np.int64), "ts_ms": ts})
            .group_by("u", "i")
            .agg(pl.col("ts_ms").min(), pl.len().cast(pl.Float64).alias("weight"))
            .sort("ts_ms", "u", "i")
        )
        pairs = (
            grouped.join(keys, on="u")
            .sort("ts_ms", "u", "i")
            .select(
                "user_key",
                pl.concat_str(pl.lit("nb-item-"), pl.col("i").cast(pl.String).str.zfill(6)).alias(
                    "item_id"
                ),
                "ts_ms",
                "weight",
            )
        )
        data_s = time.perf_counter() - t
        t = time.perf_counter()
        loaded = fit_recommender(pairs, "als", {"factors": args.factors}, seed=args.seed)
        fit_s = time.perf_counter() - t
        by_count = (
            pairs.group_by("item_id").len().sort(["len", "item_id"], descending=[True, False])
        )
        cat_of = {it["item_id"]: it["category"] for it in items}
        ranked = by_count.get_column("item_id").to_list()
        trending: dict[str, list[str]] = {}
        for item in ranked:
            lst = trending.setdefault(cat_of[item], [])
            if len(lst) < 20:
                lst.append(item)
        cold = {
            "global": ranked[:200],
            "device": {},
            "daypart": {},
            "segment": {},
            "trending": trending,
        }
        staging = services.registry.staging_dir("recommendations")
        save_model(
            staging,
            loaded.model,
            loaded.users,
            loaded.items,
            {},
            seen=loaded.seen,
            extra={"cold_start.json": json.dumps(cold)},
        )
        mv = services.registry.register(
            "recommendations",
            staging,
            kind="recommender",
            algorithm="als",
            metrics={},
            lineage={},
            actor="bench",
        )
        shutil.rmtree(staging, ignore_errors=True)
        promote(
            services.registry,
            settings.governance,
            "recommendations",
            mv.version,
            actor="bench",
            force=True,
            reason="serve bench",
        )
        serve_key = services.keys.create("bench-serve", "serve")[1]
        ingest_key = services.keys.create("bench-ingest", "ingest")[1]
        fav_cats = [int(c) for c in sim.item_cat]
    finally:
        services.close()
    print(
        f"setup: {args.users:,} users x {args.items:,} items, {len(u):,} events -> "
        f"{pairs.height:,} pairs ({data_s:.1f} s); ALS {args.factors} factors fitted in "
        f"{fit_s:.1f} s; production model v{mv.version}",
        flush=True,
    )
    return {
        "settings": secrets_env,
        "serve_key": serve_key,
        "ingest_key": ingest_key,
        "item_cat": fav_cats,
        "n_cats": N_CATS,
        "pairs": pairs.height,
        "events": len(u),
        "fit_s": fit_s,
        "raw_pairs": (grouped.get_column("u").to_numpy(), grouped.get_column("i").to_numpy()),
    }


# -- the peer: Cornac's own server -------------------------------------------------------------
def peer_missing() -> str | None:
    """Why Cornac's server cannot run here, or None."""
    for module in ("cornac", "flask", "gunicorn"):
        if importlib.util.find_spec(module) is None:
            return f"{module} is not installed (pip install -e '.[bench]')"
    return None


def train_cornac(args: argparse.Namespace, tmp: Path, raw_pairs: tuple[Any, Any]) -> Path:
    """BPR with ``--factors`` factors on the very pairs Tastebud trained on (raw user ids, as
    Cornac's server is asked for them), saved with its train set; returns the model directory."""
    from collections import OrderedDict

    import cornac
    from cornac.data import Dataset

    u, i = raw_pairs
    users = np.unique(u)
    items = np.unique(i)
    uid_map = OrderedDict((f"nb-user-{int(k):07d}", n) for n, k in enumerate(users))
    iid_map = OrderedDict((f"nb-item-{int(j):06d}", n) for n, j in enumerate(items))
    train = Dataset(
        num_users=len(users),
        num_items=len(items),
        uid_map=uid_map,
        iid_map=iid_map,
        uir_tuple=(
            np.searchsorted(users, u).astype(int),
            np.searchsorted(items, i).astype(int),
            np.ones(len(u)),
        ),
        seed=args.seed,
    )
    t = time.perf_counter()
    model = cornac.models.BPR(
        k=args.factors,
        max_iter=args.peer_iterations,
        learning_rate=0.01,
        lambda_reg=0.01,
        seed=args.seed,
    )
    model.fit(train)
    out = tmp / "cornac"
    model.save(str(out), save_trainset=True)
    print(
        f"peer: Cornac {cornac.__version__} BPR, {args.factors} factors, "
        f"{args.peer_iterations} epochs on {len(u):,} pairs, fitted in "
        f"{time.perf_counter() - t:.1f} s",
        flush=True,
    )
    return out / model.name


def start_peer(args: argparse.Namespace, tmp: Path, model_dir: Path) -> tuple[Any, str]:
    """Cornac's Flask app under gunicorn (``--workers`` sync workers); waits until every worker
    answers (50 good answers in a row; each request is a new connection)."""
    env = clean_env(MODEL_PATH=str(model_dir), MODEL_CLASS="cornac.models.BPR")
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        if args.no_blas_limit:
            env.pop(var, None)
        else:
            env[var] = "1"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp / "cornac.log"
    cmd = [sys.executable, "-m", "gunicorn", "--workers", str(args.workers)]
    cmd += ["--bind", f"127.0.0.1:{port}", "cornac.serving.app:app"]
    with log.open("wb") as out:
        server = subprocess.Popen(cmd, env=env, cwd=tmp, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 300
    try:
        ok = 0
        while ok < 50:
            try:
                r = httpx.get(
                    f"{url}/recommend",
                    params={"uid": f"nb-user-{ok:07d}", "k": 10, "remove_seen": "true"},
                    timeout=30,
                )
                ok = ok + 1 if r.status_code == 200 else 0
            except httpx.TransportError:
                ok = 0
                time.sleep(0.2)
            if time.monotonic() > deadline or server.poll() is not None:
                raise SystemExit("Cornac's server did not start: " + log.read_text()[-2000:])
    except BaseException:
        server.terminate()
        server.wait(30)
        raise
    return server, url


def send_session_events(url: str, key: str, n_users: int, item_cat: list[int], seed: int) -> int:
    """Three page views each (items of one category) for the session-only users."""
    rng = np.random.default_rng(seed + 2)
    by_cat: dict[int, list[int]] = {}
    for j, c in enumerate(item_cat):
        by_cat.setdefault(c, []).append(j)
    cats = sorted(by_cat)
    now = time.time()
    events = []
    for s in range(n_users):
        pool = by_cat[cats[int(rng.integers(len(cats)))]]
        for e, j in enumerate(rng.choice(pool, size=min(3, len(pool)), replace=False)):
            events.append(
                {
                    "event_type": "page_view",
                    "user_id": f"nb-sess-{s:05d}",
                    "session_id": f"nb-s-{s}",
                    "item_id": f"nb-item-{int(j):06d}",
                    "timestamp": now - 60 + e * 5,
                    "data": {},
                }
            )
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=60) as c:
        for lo in range(0, len(events), 500):
            r = c.post("/v1/events/batch", json={"events": events[lo : lo + 500]})
            if r.status_code != 200 or r.json()["rejected"]:
                raise SystemExit(f"session events rejected: {r.text[:300]}")
    return len(events)


def freshness(
    url: str, serve_key: str, ingest_key: str, users: list[int], budget_s: float = 60.0
) -> dict[str, Any]:
    """Per user: the list, a page view of its first item, then poll until the item is gone.
    Users left when ``budget_s`` is spent are skipped (an overloaded server)."""
    times: list[float] = []
    polls: list[int] = []
    failures = skipped = 0
    with (
        httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {serve_key}"}, timeout=5
        ) as serve,
        httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {ingest_key}"}, timeout=5
        ) as ingest,
    ):
        give_up = time.perf_counter() + budget_s
        for u in users:
            if time.perf_counter() > give_up:
                skipped += 1
                continue
            try:
                polled = _fresh_one(serve, ingest, u)
            except httpx.HTTPError:
                polled = None
            if polled is None:
                failures += 1
            else:
                times.append(polled[0])
                polls.append(polled[1])
    s = np.sort(np.array(times))
    return {
        "p50_ms": nearest_rank(s, 0.5),
        "p99_ms": nearest_rank(s, 0.99),
        "max_ms": float(s[-1]) if len(s) else float("nan"),
        "users": len(users),
        "measured": len(times),
        "failures": failures,
        "skipped": skipped,
        "first_poll_share": float(np.mean(np.array(polls) == 1)) if polls else 0.0,
    }


def _fresh_one(serve: httpx.Client, ingest: httpx.Client, u: int) -> tuple[float, int] | None:
    """(ms from the 202 to the first list without the item, lists read), or None on failure."""
    user = f"nb-user-{u:07d}"
    path = f"/v1/users/{user}/recommendations?k=10"
    r = serve.get(path)
    if r.status_code != 200 or not r.json()["items"]:
        return None
    target = r.json()["items"][0]["item_id"]
    r = ingest.post(
        "/v1/events",
        json={
            "event_type": "page_view",
            "user_id": user,
            "session_id": f"fresh-{u}",
            "item_id": target,
            "timestamp": time.time(),
            "data": {},
        },
    )
    acked = time.perf_counter()
    if r.status_code != 202:
        return None
    n = 0
    while True:
        n += 1
        r = serve.get(path)
        done = time.perf_counter()
        if r.status_code == 200 and all(it["item_id"] != target for it in r.json()["items"]):
            return (done - acked) * 1000, n
        if done - acked > 2.0:
            return None
        time.sleep(0.002)


def server_settings(redis_url: str, tmp: Path, deploy: dict[str, Any]) -> dict[str, str]:
    """The deployment's settings as the server's environment (``TASTEBUD_*``)."""
    return {
        "TASTEBUD_DATA_DIR": str(tmp / "data"),
        "TASTEBUD_REDIS_URL": redis_url,
        "TASTEBUD_PSEUDONYM_KEY": deploy["settings"]["pseudonym_key"],
        "TASTEBUD_FERNET_KEYS": deploy["settings"]["fernet_keys"],
        "TASTEBUD_LOG_LEVEL": "WARNING",
        "TASTEBUD_SERVING": '{"log_impressions": true}',
    }


def start_server(args: argparse.Namespace, tmp: Path, deploy: dict[str, Any]) -> tuple[Any, str]:
    env = clean_env(**server_settings(args.redis_url, tmp, deploy))
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        if args.no_blas_limit:
            env.pop(var, None)
        else:
            env[var] = "1"
    for item in args.server_env:
        name, _, value = item.partition("=")
        env[name] = value
    server, url = start(env, args.workers, tmp / "server.log")
    try:
        wait_models(url, deploy["serve_key"])
    except BaseException:
        server.terminate()
        server.wait(30)
        raise
    return server, url


def wait_models(url: str, serve_key: str) -> None:
    deadline = time.monotonic() + 180
    # Every worker must have its model loaded: 50 successful answers in a row, each on a new
    # connection (so that both API processes answer some).
    headers = {"Authorization": f"Bearer {serve_key}"}
    with httpx.Client(base_url=url, headers=headers, timeout=30) as c:
        ok = 0
        while ok < 50:
            r = c.get(
                f"/v1/users/nb-user-{ok:07d}/recommendations?k=10", headers={"Connection": "close"}
            )
            ok = ok + 1 if r.status_code == 200 else 0
            if time.monotonic() > deadline:
                raise SystemExit(f"recommendations not ready: {r.status_code} {r.text[:300]}")


def fmt_run(label: str, r: dict[str, Any], cpu: float) -> str:
    extra = ""
    if "known_p99_ms" in r:
        extra = (
            f" | p99 known {r['known_p99_ms']:.1f} new {r['new_p99_ms']:.1f} "
            f"session {r['session_p99_ms']:.1f}; cache hits {r['cache_hit_share']:.0%}"
        )
    # CPU per request only means something when every request was answered in time: otherwise
    # the server also spent CPU on requests whose clients had given up.
    per_request = (
        f"{cpu * r['wall_s'] / r['answered'] * 1e6:,.0f} us/request"
        if r["errors"] == 0 and r["answered"]
        else "overloaded"
    )
    if "server_kernel_share" in r:
        per_request += f", {r['server_kernel_share']:.0%} in the kernel"
    if r["errors"]:
        codes = ", ".join(f"{n} x {c}" for c, n in sorted(r["status_codes"].items()))
        extra += (
            f" | errors: {codes}{', ' if codes else ''}{r['timeouts']} timeouts, "
            f"{r['transport_errors']} transport"
        )
    return (
        f"  {label:<16} {r['rate']:>6,.0f}/s  p50 {r['p50_ms']:7.2f}  p95 {r['p95_ms']:7.2f}  "
        f"p99 {r['p99_ms']:8.2f}  max {r['max_ms']:8.1f} ms  errors {r['errors']:>5}  "
        f"server {cpu:.2f} cores ({per_request}; busiest "
        f"processes {'/'.join(f'{c:.2f}' for c in r.get('process_cores', []))}), "
        f"generator {r['generator_cpu']:.0%} of a core, other jobs "
        f"{r.get('other_cores', float('nan')):.2f} cores, "
        f"send lag p99 {r['lag_p99_ms']:.1f} ms{extra}"
    )


class RateSearch:
    """The highest sustained rate of one target: from ``start`` the rate doubles until a run
    fails (halves while the first ones fail, down to ``min_rate``), then the bracket [highest
    sustained, lowest failed] is bisected at its geometric middle until hi / lo <= ``ratio``."""

    def __init__(self, start: int, max_rate: int, min_rate: int = 10, ratio: float = 1.05):
        self.max_rate, self.min_rate, self.ratio = max_rate, min_rate, ratio
        self.lo = 0  # highest sustained so far
        self.hi: int | None = None  # lowest failed so far
        self.next: int | None = min(start, max_rate)
        self.runs: list[dict[str, Any]] = []

    def record(self, r: dict[str, Any]) -> None:
        rate = int(r["rate"])
        self.runs.append(r)
        if r["sustained"]:
            self.lo = max(self.lo, rate)
        else:
            self.hi = rate if self.hi is None else min(self.hi, rate)
        if self.hi is None:  # everything so far sustained: double
            self.next = min(2 * rate, self.max_rate) if rate < self.max_rate else None
        elif self.lo == 0:  # nothing sustained yet: halve
            self.next = rate // 2 if rate // 2 >= self.min_rate else None
        elif self.hi / self.lo <= self.ratio:
            self.next = None
        else:
            mid = int(round(math.sqrt(self.lo * self.hi)))
            self.next = mid if self.lo < mid < self.hi else None

    def bracket(self) -> str:
        return f"[{self.lo:,}, {'-' if self.hi is None else f'{self.hi:,}'}]"


def measure(
    label: str, spec: dict[str, Any], rate: float, seconds: float, seed: int, pid: int, workers: int
) -> dict[str, Any]:
    """One open-loop run against the server ``pid`` (and its children), with its CPU, the
    generator's and everybody else's; then waits until that server is idle again."""
    cpu0, busy0, sys0 = cpu_by_process(pid), machine_busy(), kernel_cpu(pid)
    r = run_load({**spec, "rate": rate, "seconds": seconds, "seed": seed})
    cpu1, busy1, sys1 = cpu_by_process(pid), machine_busy(), kernel_cpu(pid)
    cores = worker_cores(cpu0, cpu1, r["wall_s"])
    r["server_cores"] = sum(cores)
    busy = r["server_cores"] * r["wall_s"]
    r["server_kernel_share"] = (sys1 - sys0) / busy if busy > 0 else 0.0
    # Everything else on the machine: other people's jobs and the other server's idle work (the
    # generator's own share is reported apart).
    r["other_cores"] = max(
        0.0, (busy1 - busy0) / r["wall_s"] - r["server_cores"] - r["generator_cpu"]
    )
    r["restarts"] = len(set(cpu1) - set(cpu0))  # the server replaced a worker
    r["process_cores"] = [round(c, 2) for c in cores[:workers]]
    r["loadavg"] = os.getloadavg()[0]
    r["sustained"] = r["p99_ms"] <= P99_LIMIT_MS and r["errors"] == 0
    print(fmt_run(label, r, r["server_cores"]), flush=True)
    r["drain_s"] = wait_idle(pid)
    if r["restarts"]:
        print(f"    ({r['restarts']} server process(es) restarted during the run)")
    if r["drain_s"] > 2.5:
        print(
            f"    (the server stayed busy {r['drain_s']:.0f} s after the run: "
            "handlers of requests whose clients had given up)",
            flush=True,
        )
    return r


def profile_workers(pid: int, out_dir: Path, seconds: float, spec: dict[str, Any]) -> None:
    """py-spy (``--nonblocking --gil``, 100 samples/s: only the thread holding the GIL is
    sampled, which is what a server process spends its Python CPU on; py-spy's idle detection
    counts a thread blocked in uvloop, a queue or a socket as busy) on each API process during
    one open-loop run of ``spec``; speedscope files in ``out_dir`` and the top functions."""
    if shutil.which("py-spy") is None and not (Path(sys.executable).parent / "py-spy").exists():
        print("profile: py-spy is not installed (pip install -e '.[bench]'); skipped")
        return
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    out_dir.mkdir(parents=True, exist_ok=True)
    children = [  # uvicorn's workers (not multiprocessing's resource tracker)
        p
        for p in cpu_by_process(pid)
        if p != pid and b"spawn_main" in Path(f"/proc/{p}/cmdline").read_bytes()
    ]
    spies = []
    for child in children:
        out = out_dir / f"api-{child}.speedscope.json"
        cmd = [spy, "record", "--pid", str(child), "--duration", str(int(seconds)), "--rate"]
        cmd += ["100", "--nonblocking", "--gil", "--format", "speedscope", "--output", str(out)]
        spies.append(
            (subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE), out)
        )
    cpu0, busy0 = cpu_by_process(pid), machine_busy()
    r = run_load({**spec, "seconds": seconds - 1})
    per_process = worker_cores(cpu0, cpu_by_process(pid), r["wall_s"])
    cores = sum(per_process)
    r["process_cores"] = [round(c, 2) for c in per_process[: len(children)]]
    r["other_cores"] = (machine_busy() - busy0) / r["wall_s"] - cores - r["generator_cpu"]
    print(fmt_run("profiled", r, cores) + " (py-spy's own CPU counts as other jobs)", flush=True)
    totals: dict[str, float] = {}
    own: dict[str, float] = {}
    samples = 0
    for proc, out in spies:
        proc.wait(60)
        if not out.exists():
            print(f"profile: py-spy wrote nothing ({proc.stderr.read()[-300:]!r})")
            continue
        doc = json.loads(out.read_text())
        frames = doc["shared"]["frames"]
        for prof in doc["profiles"]:
            for stack in prof["samples"]:  # py-spy's weights are seconds: count samples
                weight = 1
                samples += weight
                names = {
                    f"{frames[f]['name']} ({Path(frames[f].get('file', '?')).name})" for f in stack
                }
                for name in names:
                    totals[name] = totals.get(name, 0.0) + weight
                if stack:
                    top = frames[stack[-1]]
                    name = f"{top['name']} ({Path(top.get('file', '?')).name})"
                    own[name] = own.get(name, 0.0) + weight
    if samples:
        print(
            f"profile ({samples:,} GIL-holding samples of {len(spies)} API processes, {out_dir}):"
        )
        for title, table in (("inclusive", totals), ("self", own)):
            top = sorted(table.items(), key=lambda kv: -kv[1])[:25]
            print(f"  {title}: " + "; ".join(f"{n} {w / samples:.1%}" for n, w in top))


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--users", type=int, default=100_000)
    ap.add_argument("--items", type=int, default=20_000)
    ap.add_argument("--per-user", type=float, default=50.0, help="mean events per user")
    ap.add_argument("--factors", type=int, default=64)
    ap.add_argument("--seconds", type=float, default=20.0, help="per rate of the searches")
    ap.add_argument("--p99-seconds", type=float, default=60.0, help="the run at 300 requests/s")
    ap.add_argument("--start-rate", type=int, default=100, help="the searches' first rate")
    ap.add_argument("--max-rate", type=int, default=20_000, help="the searches stop here")
    ap.add_argument("--workers", type=int, default=2, help="server processes (one per core)")
    ap.add_argument("--connections", type=int, default=128, help="generator connections")
    ap.add_argument("--timeout", type=float, default=2.0, help="seconds from the due time")
    ap.add_argument("--session-users", type=int, default=5000)
    ap.add_argument("--fresh-users", type=int, default=200)
    ap.add_argument("--redis-url", default=REDIS_DEFAULT)
    ap.add_argument("--no-peer", action="store_true", help="do not run Cornac's server")
    ap.add_argument("--peer-iterations", type=int, default=20, help="Cornac BPR epochs")
    ap.add_argument(
        "--no-blas-limit",
        action="store_true",
        help="leave BLAS threads at the library default in the servers",
    )
    ap.add_argument(
        "--server-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra server environment (e.g. TASTEBUD_SERVING='{\"cache_ttl_s\": 0}')",
    )
    ap.add_argument(
        "--profile-dir",
        type=Path,
        help="at the end, profile the API processes with py-spy during a run at 300/s",
    )
    ap.add_argument("--profile-seconds", type=float, default=30.0)
    ap.add_argument("--keep", action="store_true", help="keep the server up (Ctrl-C to stop)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--load-spec", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.load_spec:
        load_main(json.loads(args.load_spec))
        return

    peer_why = "not run (--no-peer)" if args.no_peer else peer_missing()
    if peer_why:
        print(f"peer: Cornac's server {peer_why}; peer_cornac_max_sustained_rps is null")
    for var in [k for k in os.environ if k.startswith("TASTEBUD_")]:
        del os.environ[var]
    tmp = Path(tempfile.mkdtemp(prefix="tb-bench-serve-"))
    try:
        run(args, tmp, peer_why)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def run(args: argparse.Namespace, tmp: Path, peer_why: str | None) -> None:
    """Everything after the arguments (see the module docstring), in ``tmp``."""
    started = time.perf_counter()
    load_before = os.getloadavg()
    deploy = build_deployment(args, tmp)
    peer_dir = None
    if not peer_why:
        try:
            peer_dir = train_cornac(args, tmp, deploy["raw_pairs"])
        except Exception as e:  # the peer's failure must not cost us our own figures
            peer_why = f"failed to train: {type(e).__name__}: {e}"
            print(f"peer: {peer_why}")
    del deploy["raw_pairs"]
    server, url = start_server(args, tmp, deploy)
    port = int(url.rsplit(":", 1)[1])
    peer: Any = None
    searches: dict[str, RateSearch] = {}
    try:
        if peer_dir is not None:
            try:
                peer, peer_url = start_peer(args, tmp, peer_dir)
            except SystemExit as e:
                peer_why = f"failed to start: {str(e)[-300:]}"
                print(f"peer: {peer_why}")
        n_ev = send_session_events(
            url, deploy["ingest_key"], args.session_users, deploy["item_cat"], args.seed
        )
        print(
            f"server: {url}, {args.workers} API process(es), BLAS threads "
            f"{'library default' if args.no_blas_limit else '1'}; {args.session_users:,} "
            f"session-only users ({n_ev:,} events)"
            + (f"; peer: {peer_url}, gunicorn {args.workers} sync workers" if peer else ""),
            flush=True,
        )
        base = {
            "host": "127.0.0.1",
            "port": port,
            "timeout": args.timeout,
            "connections": args.connections,
            "known_users": args.users,
            "session_users": args.session_users,
            "mix": [0.70, 0.15, 0.15],
        }
        rec = {**base, "path": "recommendations", "key": deploy["serve_key"]}
        health = {**base, "path": "healthz", "key": None}
        targets: list[tuple[str, dict[str, Any], int]] = [
            ("recommendations", rec, server.pid),
            ("healthz", health, server.pid),
        ]
        if peer is not None:
            cornac_spec = {**base, "path": "cornac", "key": None, "mix": [1.0, 0.0, 0.0]}
            cornac_spec["port"] = int(peer_url.rsplit(":", 1)[1])
            targets.append(("cornac", cornac_spec, peer.pid))
            run_load({**cornac_spec, "rate": 100, "seconds": 3, "seed": 10_001})
        run_load({**rec, "rate": 100, "seconds": 3, "seed": 10_000})  # warm-up, not reported
        seed = 0
        print(
            f"p99 at 300 requests/s over {args.p99_seconds:g} s, latency from each request's "
            f"due time (load average before {os.getloadavg()[0]:.2f}):",
            flush=True,
        )
        at300 = measure(
            "recommendations", rec, 300, args.p99_seconds, seed, server.pid, args.workers
        )
        print(
            f"highest sustained rates (p99 <= {P99_LIMIT_MS:g} ms, no error; {args.seconds:g} s "
            f"per run; doubling from {args.start_rate}/s, then bisection to hi/lo <= 1.05), "
            "the three searches interleaved:",
            flush=True,
        )
        searches = {label: RateSearch(args.start_rate, args.max_rate) for label, _, _ in targets}
        while any(s.next is not None for s in searches.values()):
            for label, spec, pid in targets:
                search = searches[label]
                if search.next is None:
                    continue
                seed += 1
                r = measure(label, spec, search.next, args.seconds, seed, pid, args.workers)
                search.record(r)
                if search.next is None:
                    print(f"    {label}: done, sustained {search.bracket()}", flush=True)

        # Freshness: idle, then under 300 requests/s of the same mix.
        rng = np.random.default_rng(args.seed + 3)
        sample = [int(u) for u in rng.choice(args.users, 2 * args.fresh_users, replace=False)]
        fresh_idle = freshness(
            url, deploy["serve_key"], deploy["ingest_key"], sample[: args.fresh_users]
        )
        bg_spec = {**rec, "rate": 300, "seconds": 20.0, "seed": 999}
        bg = subprocess.Popen(
            load_cmd(bg_spec), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        time.sleep(1.5)
        fresh_load = freshness(
            url,
            deploy["serve_key"],
            deploy["ingest_key"],
            sample[args.fresh_users :],
            budget_s=17.0,
        )
        bg_out, bg_err = bg.communicate()
        if bg.returncode != 0:
            raise SystemExit(f"background load failed: {bg_err[-2000:]}")
        background = json.loads(bg_out.strip().splitlines()[-1])
        if args.profile_dir:
            wait_idle(server.pid)
            spec = {**rec, "rate": 300, "seed": 998}
            try:
                profile_workers(server.pid, args.profile_dir, args.profile_seconds, spec)
            except Exception as e:  # a profile is a bonus: never lose the measurements for it
                print(f"profile failed: {type(e).__name__}: {e}")
        if args.keep:
            print(f"server kept at {url} (serve key {deploy['serve_key']}); Ctrl-C to stop")
            try:
                server.wait()
            except KeyboardInterrupt:
                pass
    finally:
        for proc in (server, peer):
            if proc is not None:
                proc.terminate()
                proc.wait(30)
    total_s = time.perf_counter() - started

    results = searches["recommendations"].runs
    floor = searches["healthz"].runs
    cornac_runs = searches["cornac"].runs if "cornac" in searches else []
    best = searches["recommendations"].lo
    floor_best = searches["healthz"].lo
    cornac_best = searches["cornac"].lo if "cornac" in searches else None
    floor_ratio = best / floor_best if floor_best else None
    cornac_ratio = best / cornac_best if cornac_best else None
    errors = sum(r["errors"] for r in results) + at300["errors"]
    errors_targets = sum(r["errors"] for r in [*results, at300] if r["rate"] <= 1000)
    codes: dict[str, int] = {}
    for r in [*results, at300]:
        for code, n in r["status_codes"].items():
            codes[code] = codes.get(code, 0) + n
    for label, f in (("idle", fresh_idle), ("under 300 requests/s", fresh_load)):
        print(
            f"freshness {label} (page view acknowledged -> first list without the item): p50 "
            f"{f['p50_ms']:.1f} ms, p99 {f['p99_ms']:.1f} ms over {f['measured']} of "
            f"{f['users']} users (failed {f['failures']}, skipped {f['skipped']}); seen at the "
            f"first read {f['first_poll_share']:.0%}"
        )
    print(
        f"  background load for it: p99 {background['p99_ms']:.1f} ms, "
        f"{background['errors']} errors"
    )

    def tried(runs: list[dict[str, Any]]) -> str:
        return ", ".join(f"{int(r['rate'])}{'' if r['sustained'] else 'x'}" for r in runs)

    print(
        f"max sustained (p99 <= {P99_LIMIT_MS:g} ms, no errors): recommendations {best:,}/s "
        f"({tried(results)}; x: failed), healthz floor {floor_best:,}/s ({tried(floor)})"
        + (
            f", Cornac {cornac_best:,}/s ({tried(cornac_runs)})"
            if cornac_best is not None
            else f", Cornac: {peer_why}"
        )
    )
    applies = floor_best >= 1400
    print(
        f"targets (2 cores): p99 at 300/s over {args.p99_seconds:g} s {at300['p99_ms']:.1f} ms "
        f"(<= 15); floor ratio {_fmt(floor_ratio, '.2f')} (>= 0.7); "
        f"{_fmt(cornac_ratio, '.1f')} x Cornac (>= 5); max sustained {best:,}/s (>= 1,000 "
        + (
            f"applies: healthz sustained {floor_best:,} >= 1,400)"
            if applies
            else f"does not apply: healthz sustained only {floor_best:,}, under 1,400)"
        )
        + f"; freshness p99 {fresh_load['p99_ms']:.1f} ms (<= 50); errors up to 1,000/s "
        f"{errors_targets}; load average {load_before[0]:.2f} before setup, "
        f"{os.getloadavg()[0]:.2f} at the end; {total_s:.0f} s in all"
    )

    out: dict[str, Any] = {
        "p99_ms_at_300": round(at300["p99_ms"], 2),
        "max_sustained_rps": best,
        "freshness_p99_ms": round(fresh_load["p99_ms"], 2),
        "errors": errors,
    }
    for r in [*results, at300]:  # the 300/s run of --p99-seconds comes last: *_at_300 are its
        rate = int(r["rate"])
        for key in ("p50_ms", "p95_ms", "p99_ms"):
            out[f"{key}_at_{rate}"] = round(r[key], 2)
        out[f"errors_at_{rate}"] = r["errors"]
        out[f"server_cores_at_{rate}"] = round(r["server_cores"], 2)
        out[f"other_jobs_cores_at_{rate}"] = round(r["other_cores"], 2)
    out.update(
        {
            "errors_up_to_1000": errors_targets,
            "error_status_codes": ", ".join(f"{c}: {n}" for c, n in sorted(codes.items())),
            "freshness_p50_ms": round(fresh_load["p50_ms"], 2),
            "freshness_failures": fresh_load["failures"] + fresh_idle["failures"],
            "freshness_idle_p50_ms": round(fresh_idle["p50_ms"], 2),
            "freshness_idle_p99_ms": round(fresh_idle["p99_ms"], 2),
        }
    )
    out["healthz_max_sustained_rps"] = floor_best
    for r in floor:
        rate = int(r["rate"])
        for key in ("p50_ms", "p95_ms", "p99_ms"):
            out[f"healthz_{key}_at_{rate}"] = round(r[key], 2)
        out[f"healthz_errors_at_{rate}"] = r["errors"]
    out["healthz_errors"] = sum(r["errors"] for r in floor)
    out.update(
        {
            "peer_cornac": peer_why
            or f"BPR k={args.factors}, gunicorn {args.workers} sync workers, known users",
            "users": args.users,
            "items": args.items,
            "factors": args.factors,
            "pairs": deploy["pairs"],
            "workers": args.workers,
            "seconds_per_rate": args.seconds,
            "blas_threads": "default" if args.no_blas_limit else 1,
            "server_env": " ".join(args.server_env),
            "generator_cpu_max": round(
                max(r["generator_cpu"] for r in [*results, *floor, *cornac_runs, at300]), 3
            ),
            "server_cores_max": round(max(r["server_cores"] for r in [*results, at300]), 2),
            "worker_restarts": sum(r["restarts"] for r in [*results, *floor, at300]),
            "other_jobs_cores_mean": round(
                float(np.mean([r["other_cores"] for r in [*results, *floor, at300]])), 2
            ),
            "loadavg_before": round(load_before[0], 2),
            "loadavg_end": round(os.getloadavg()[0], 2),
        }
    )
    out.update(
        {
            "freshness_measured": fresh_load["measured"],
            "freshness_skipped": fresh_load["skipped"] + fresh_idle["skipped"],
            "freshness_background_p99_ms": background["p99_ms"],
            "freshness_background_errors": background["errors"],
        }
    )
    out.update(
        {
            "floor_ratio": None if floor_ratio is None else round(floor_ratio, 3),
            "peer_cornac_max_sustained_rps": cornac_best,
            "peer_cornac_ratio": None if cornac_ratio is None else round(cornac_ratio, 2),
            "max_sustained_upper_rps": searches["recommendations"].hi,
            "healthz_max_sustained_upper_rps": searches["healthz"].hi,
            "peer_cornac_max_sustained_upper_rps": (
                searches["cornac"].hi if "cornac" in searches else None
            ),
            "rates_tried": tried(results),
            "healthz_rates_tried": tried(floor),
            "peer_cornac_rates_tried": tried(cornac_runs),
            "p99_seconds": args.p99_seconds,
            "p50_ms_at_300_run": round(at300["p50_ms"], 2),
            "server_cores_at_300_run": round(at300["server_cores"], 2),
            "thousand_target_applies": applies,
        }
    )
    for r in cornac_runs:
        rate = int(r["rate"])
        out[f"peer_cornac_p99_ms_at_{rate}"] = round(r["p99_ms"], 2)
        out[f"peer_cornac_errors_at_{rate}"] = r["errors"]
        out[f"peer_cornac_server_cores_at_{rate}"] = round(r["server_cores"], 2)
    print(json.dumps({k: _finite(v) for k, v in out.items()}))


def _fmt(v: float | None, spec: str) -> str:
    return "n/a" if v is None else format(v, spec)


def _finite(v: Any) -> Any:
    """JSON has no NaN: a figure that could not be measured is null."""
    if isinstance(v, float):
        return None if not np.isfinite(v) else round(v, 2)
    return v


if __name__ == "__main__":
    main()
