"""Ingestion benchmark: events/s through the real HTTP batch API against a plain DB-API floor.

    python bench/ingest.py [--database sqlite|postgresql] [--events N]

1. Simulates N NetworkBuster events (the project's simulator) and encodes them in batches of 500.
2. Starts the real server (``tastebud serve``, uvicorn, 2 API processes by default: one per
   core) on 127.0.0.1 with a fresh database, and sends the batches from this process (another
   process than the server) over 4 keep-alive connections as fast as the server answers:
   ``http_events_per_s``.
3. Floor, in the same run: the very rows the server stored, inserted into the same schema in a
   fresh database of the same kind with plain DB-API calls and no Tastebud code, 500 rows per
   transaction with the same durability settings: ``executemany`` for SQLite (WAL, same
   ``synchronous`` and cache size), ``COPY`` for PostgreSQL.
4. The single-event endpoint: closed loop over 4 connections for the throughput
   (``single_rps``), then open loop at half that rate, latency measured from each request's
   scheduled send time (no coordinated omission): ``single_p99_ms``.

Steps 1 to 3 run ``--repeat`` times (default 3), alternating HTTP and floor so that both see the
same machine noise; medians are reported. Prints the figures; the last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
from _server import clean_env, cpu_by_process, start_server
from cryptography.fernet import Fernet

from tastebud.simulator import SimConfig, Simulator
from tastebud.store import EVENT_COLUMNS

PG_DEFAULT = "postgresql://postgres@127.0.0.1:5432/test"
COLUMNS = EVENT_COLUMNS
"""The stored columns of an event, as the store writes them (the floor inserts the same rows)."""


def tastebud(args: list[str], env: dict[str, str]) -> str:
    r = subprocess.run(
        [sys.executable, "-m", "tastebud.cli", *args],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return r.stdout


def tree_cpu_split(pid: int) -> tuple[float, float]:
    """User and system CPU seconds of a process and its live children."""
    parts = cpu_by_process(pid).values()
    return sum(u for u, _ in parts), sum(s for _, s in parts)


def make_events(n: int, seed: int) -> list[dict[str, Any]]:
    # Enough users and days for n events; the window ends before now (no future timestamps).
    users = max(50, n // 100)
    start = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(
        days=31
    )
    sim = Simulator(SimConfig(users=users, items=5000, days=30, seed=seed, start=start))
    out: list[dict[str, Any]] = []
    for e in sim.events():
        out.append(e)
        if len(out) >= n:
            break
    return out


def post_batches(url: str, key: str, bodies: list[bytes], connections: int) -> float:
    """Send every body; returns the elapsed seconds. Fails loudly on any non-200."""
    lock = threading.Lock()
    queue = list(reversed(bodies))
    errors: list[str] = []

    def worker() -> None:
        headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        with httpx.Client(base_url=url, headers=headers, timeout=60) as client:
            while True:
                with lock:
                    if not queue or errors:
                        return
                    body = queue.pop()
                r = client.post("/v1/events/batch", content=body)
                if r.status_code != 200 or r.json()["rejected"]:
                    errors.append(r.text[:300])

    threads = [threading.Thread(target=worker) for _ in range(connections)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    if errors:
        raise SystemExit(f"batch errors: {errors[0]}")
    return elapsed


def single_closed_loop(url: str, key: str, seconds: float, connections: int = 4) -> float:
    stop = time.perf_counter() + seconds
    counts = [0] * connections
    ts = datetime.now(UTC).isoformat()

    failures: list[str] = []

    def worker(i: int) -> None:
        headers = {"Authorization": f"Bearer {key}"}
        with httpx.Client(base_url=url, headers=headers, timeout=30) as client:
            while time.perf_counter() < stop and not failures:
                # Distinct events (their own ids): the same content sent again would be a
                # duplicate (200), not a new event.
                r = client.post(
                    "/v1/events",
                    json={
                        "event_id": uuid.uuid4().hex,
                        "event_type": "click",
                        "user_id": f"bench-{i}",
                        "timestamp": ts,
                        "data": {"element_id": "cta"},
                    },
                )
                if r.status_code != 202:
                    failures.append(f"single error {r.status_code}: {r.text[:200]}")
                    return
                counts[i] += 1

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(connections)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if failures:
        raise SystemExit(failures[0])
    return sum(counts) / (time.perf_counter() - t0)


def single_open_loop(url: str, key: str, rate: float, seconds: float) -> tuple[float, float, int]:
    """Open loop at ``rate``/s; latency from the scheduled send time. Returns (p50, p99, errors)."""
    n = int(rate * seconds)
    t0 = time.perf_counter() + 0.2
    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()
    next_index = [0]
    ts = datetime.now(UTC).isoformat()

    def worker() -> None:
        nonlocal errors
        headers = {"Authorization": f"Bearer {key}"}
        with httpx.Client(base_url=url, headers=headers, timeout=30) as client:
            while True:
                with lock:
                    i = next_index[0]
                    next_index[0] += 1
                if i >= n:
                    return
                scheduled = t0 + i / rate
                delay = scheduled - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                r = client.post(
                    "/v1/events",
                    json={
                        "event_id": uuid.uuid4().hex,
                        "event_type": "click",
                        "user_id": f"open-{i % 500}",
                        "timestamp": ts,
                        "data": {"element_id": "cta"},
                    },
                )
                done = time.perf_counter()
                with lock:
                    latencies.append((done - scheduled) * 1000)
                    if r.status_code != 202:
                        errors += 1

    threads = [threading.Thread(target=worker) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    latencies.sort()
    return latencies[len(latencies) // 2], latencies[int(len(latencies) * 0.99) - 1], errors


def floor_sqlite(
    rows: list[tuple[Any, ...]], path: Path, synchronous: str, env: dict[str, str]
) -> float:
    tastebud(["db", "upgrade"], {**env, "TASTEBUD_DATABASE_URL": f"sqlite:///{path}"})
    con = sqlite3.connect(path)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute(f"PRAGMA synchronous={synchronous}")
    con.execute("PRAGMA cache_size=-65536")
    sql = f"INSERT INTO events ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
    t0 = time.perf_counter()
    for start in range(0, len(rows), 500):
        con.executemany(sql, rows[start : start + 500])
        con.commit()
    elapsed = time.perf_counter() - t0
    con.close()
    return len(rows) / elapsed


def floor_postgres(rows: list[tuple[Any, ...]], url: str, env: dict[str, str]) -> float:
    import psycopg

    schema = f"bench_floor_{secrets.token_hex(4)}"
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(f'CREATE SCHEMA "{schema}"')
    scoped = f"{url}?options=-csearch_path%3D{schema}"
    try:
        tastebud(["db", "upgrade"], {**env, "TASTEBUD_DATABASE_URL": scoped})
        with psycopg.connect(url, options=f"-csearch_path={schema}") as con:
            t0 = time.perf_counter()
            for start in range(0, len(rows), 500):
                with (
                    con.cursor() as cur,
                    cur.copy(f"COPY events ({', '.join(COLUMNS)}) FROM STDIN") as copy,
                ):
                    for row in rows[start : start + 500]:
                        copy.write_row(row)
                con.commit()
            elapsed = time.perf_counter() - t0
    finally:
        with psycopg.connect(url, autocommit=True) as admin:
            admin.execute(f'DROP SCHEMA "{schema}" CASCADE')
    return len(rows) / elapsed


def stored_rows(database_url: str) -> list[tuple[Any, ...]]:
    """Every stored row, as the driver gets it."""
    from sqlalchemy import text

    from tastebud.store import make_engine

    engine = make_engine(database_url)
    with engine.connect() as conn:
        result = conn.execute(text(f"SELECT {', '.join(COLUMNS)} FROM events ORDER BY id"))
        rows = []
        for r in result:
            r = list(r)
            for i in (10, 11):  # JSON back to text, as a client library would send it
                if r[i] is not None and not isinstance(r[i], str):
                    r[i] = orjson.dumps(r[i]).decode()
            rows.append(tuple(r))
    engine.dispose()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--events", type=int, default=100_000, help="events per run")
    parser.add_argument("--pg-url", default=os.environ.get("TASTEBUD_TEST_PG_URL", PG_DEFAULT))
    parser.add_argument("--connections", type=int, default=4, help="2 per API process")
    parser.add_argument("--workers", type=int, default=2, help="API processes (one per core)")
    parser.add_argument("--repeat", type=int, default=3, help="runs; medians are reported")
    parser.add_argument("--single-seconds", type=float, default=8.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--realtime",
        default="memory://",
        help="real-time backend of the server, e.g. redis://127.0.0.1:6379/15",
    )
    parser.add_argument(
        "--without-ids",
        action="store_true",
        help="send the events without event_id, as a browser's trackEvent does: the server "
        "derives each id from the event's content (a keyed hash)",
    )
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="tb-bench-ingest-"))
    env = clean_env(
        **{
            "TASTEBUD_DATA_DIR": str(tmp / "data"),
            "TASTEBUD_PSEUDONYM_KEY": secrets.token_hex(32),
            "TASTEBUD_FERNET_KEYS": Fernet.generate_key().decode(),
            "TASTEBUD_LOG_LEVEL": "WARNING",
            "TASTEBUD_REDIS_URL": args.realtime,
        }
    )
    pg_schema = None
    if args.database == "postgresql":
        import psycopg

        pg_schema = f"bench_ingest_{secrets.token_hex(4)}"
        with psycopg.connect(args.pg_url, autocommit=True) as admin:
            admin.execute(f'CREATE SCHEMA "{pg_schema}"')
        env["TASTEBUD_DATABASE_URL"] = f"{args.pg_url}?options=-csearch_path%3D{pg_schema}"
    database_url = env.get("TASTEBUD_DATABASE_URL", f"sqlite:///{tmp / 'data' / 'tastebud.db'}")

    tastebud(["db", "upgrade"], env)
    key = tastebud(["keys", "create", "--scope", "ingest", "--name", "bench"], env).split()[-1]
    server, url = start_server(env, args.workers, tmp / "server.log", timeout_s=60)
    http_runs: list[float] = []
    floor_runs: list[float] = []
    server_us: list[float] = []
    server_sys_us: list[float] = []  # the kernel's part of server_us (fsync, sockets, futexes)
    try:
        # Repetitions alternate HTTP and floor so that both see the same machine noise; the
        # medians are reported.
        for rep in range(args.repeat):
            events = make_events(args.events, args.seed + rep)
            if args.without_ids:
                events = [{k: v for k, v in e.items() if k != "event_id"} for e in events]
            bodies = [
                orjson.dumps({"events": events[i : i + 500]}) for i in range(0, len(events), 500)
            ]
            if rep == 0:  # warm-up outside the measurement
                warm = [dict(e, event_id=uuid.uuid4().hex) for e in events[:500]]
                post_batches(url, key, [orjson.dumps({"events": warm})] * 4, 1)
            before = {r[0] for r in stored_rows(database_url)}
            cpu0, (user0, sys0) = time.process_time(), tree_cpu_split(server.pid)
            elapsed = post_batches(url, key, bodies, args.connections)
            client_cpu = (time.process_time() - cpu0) / elapsed
            user1, sys1 = tree_cpu_split(server.pid)
            server_us.append((user1 - user0 + sys1 - sys0) / len(events) * 1e6)
            server_sys_us.append((sys1 - sys0) / len(events) * 1e6)
            http_runs.append(len(events) / elapsed)
            rows = [r for r in stored_rows(database_url) if r[0] not in before]
            assert len(rows) == len(events), (len(rows), len(events))
            if args.database == "sqlite":
                floor_runs.append(floor_sqlite(rows, tmp / f"floor-{rep}.db", "FULL", env))
            else:
                floor_runs.append(floor_postgres(rows, args.pg_url, env))
            print(
                f"run {rep + 1}: batch API {http_runs[-1]:,.0f} events/s (server CPU "
                f"{server_us[-1]:.0f} us/event, {server_sys_us[-1]:.0f} of them in the kernel; "
                f"the load generator used {client_cpu:.0%} of a "
                f"core), floor {floor_runs[-1]:,.0f} rows/s",
                flush=True,
            )
        single_rps = single_closed_loop(url, key, args.single_seconds)
        p50, p99, errors = single_open_loop(url, key, max(1.0, single_rps / 2), args.single_seconds)
    finally:
        server.terminate()
        server.wait(30)
        if pg_schema:
            import psycopg

            with psycopg.connect(args.pg_url, autocommit=True) as admin:
                admin.execute(f'DROP SCHEMA "{pg_schema}" CASCADE')

    http_eps = statistics.median(http_runs)
    floor = statistics.median(floor_runs)
    ratio = statistics.median(h / f for h, f in zip(http_runs, floor_runs, strict=True))
    sqlite_floor = "sqlite3 executemany, WAL, synchronous=FULL, 500 rows per commit"
    pg_floor = "psycopg COPY, 500 rows per commit"
    floor_desc = sqlite_floor if args.database == "sqlite" else pg_floor
    print(
        f"batch API ({args.connections} connections, {args.workers} API process(es)): "
        f"median {http_eps:,.0f} events/s over {args.repeat} runs of {args.events:,}"
    )
    print(f"floor ({floor_desc}): median {floor:,.0f} rows/s")
    print(f"ratio HTTP / floor (median of per-run ratios): {ratio:.2f}")
    print(
        f"single-event endpoint: {single_rps:,.0f} requests/s (closed loop, 4 connections); "
        f"at {single_rps / 2:,.0f}/s open loop p50 {p50:.1f} ms, p99 {p99:.1f} ms, {errors} errors"
    )
    print(
        json.dumps(
            {
                "http_events_per_s": round(http_eps),
                "floor_events_per_s": round(floor),
                "ratio": round(ratio, 3),
                "single_rps": round(single_rps),
                "single_p99_ms": round(p99, 2),
                "database": args.database,
                "events_per_run": args.events,
                "runs": args.repeat,
                "workers": args.workers,
                "single_p50_ms": round(p50, 2),
                "single_errors": errors,
                "realtime": args.realtime.split("://")[0],
                "event_ids": not args.without_ids,
                "server_cpu_us_per_event": round(statistics.median(server_us), 1),
                "server_sys_us_per_event": round(statistics.median(server_sys_us), 1),
            }
        )
    )


if __name__ == "__main__":
    main()
