"""Prometheus metrics: ``GET /metrics`` without a key, route templates (never raw paths) as
labels, ingest counts and real-time freshness, and multi-process servers (issue 8, item 7)."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tastebud.client import Client
from tastebud.config import Settings
from tastebud.services import build_services

from conftest import Api, Server, event, free_port

Families = dict[str, dict[tuple[tuple[str, str], ...], float]]


def parse(text: str) -> Families:
    """``{sample name: {sorted label pairs: value}}`` of an exposition."""
    out: Families = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out.setdefault(s.name, {})[tuple(sorted(s.labels.items()))] = s.value
    return out


def value(families: Families, sample: str, /, **labels: str) -> float:
    """The ``sample`` with exactly ``labels`` (0 when it was never recorded)."""
    return families.get(sample, {}).get(tuple(sorted(labels.items())), 0.0)


def scrape(api: Api) -> tuple[Families, str]:
    r = api.client.get("/metrics")  # no key
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    return parse(r.text), r.text


def test_metrics_needs_no_key_and_labels_latency_by_route_template(sqlite_api: Api) -> None:
    api = sqlite_api
    rec = "/v1/users/{user_id}/recommendations"
    item = "/v1/items/{item_id}"
    before, _ = scrape(api)
    api.request("GET", "/v1/users/raw-user-8841/recommendations", "serve")  # 503, no model yet
    for _ in range(3):
        assert api.request("GET", "/v1/items/raw-item-5521", "serve").status_code == 404
    assert api.client.get("/v1/items/raw-item-5521").status_code == 401
    assert api.client.get("/no/such/raw-path-7").status_code == 404
    after, text = scrape(api)

    def delta(route: str, status: str, method: str = "GET") -> float:
        labels = {"route": route, "method": method, "status": status}
        name = "tastebud_request_seconds_count"
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta(rec, "503") == 1
    assert delta(item, "404") == 3
    assert delta(item, "401") == 1
    assert delta("<unmatched>", "404") == 1
    bucket = {"route": item, "method": "GET", "status": "404", "le": "+Inf"}
    assert value(after, "tastebud_request_seconds_bucket", **bucket) >= 3
    for raw in ("raw-user-8841", "raw-item-5521", "raw-path-7"):
        assert raw not in text  # no ids, no raw paths in labels
    # Every declared metric is exposed, with its help text, even before it is recorded.
    for name in (
        "tastebud_request_seconds",
        "tastebud_recommendation_cache_total",
        "tastebud_fallback_total",
        "tastebud_model_version",
        "tastebud_model_loaded_timestamp_seconds",
        "tastebud_realtime_freshness_seconds",
        "tastebud_realtime_updates_total",
        "tastebud_events_total",
        "tastebud_impressions_total",
    ):
        assert f"# TYPE {name} " in text, name


def test_made_up_methods_do_not_mint_series(sqlite_api: Api) -> None:
    sqlite_api.client.request("BREW", "/healthz")
    families, text = scrape(sqlite_api)
    assert "BREW" not in text
    assert (
        value(
            families,
            "tastebud_request_seconds_count",
            route="/healthz",
            method="other",
            status="405",
        )
        >= 1
    )


def test_scrapes_are_not_access_logged(sqlite_api: Api, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="tastebud.access")
    sqlite_api.client.get("/metrics")
    sqlite_api.client.get("/healthz")
    routes = [r.getMessage() for r in caplog.records if r.name == "tastebud.access"]
    assert any("/healthz" in m for m in routes)
    assert not any("/metrics" in m for m in routes)


def test_openmetrics_on_request(sqlite_api: Api) -> None:
    r = sqlite_api.client.get("/metrics", headers={"Accept": "application/openmetrics-text"})
    assert r.headers["content-type"].startswith("application/openmetrics-text")
    assert r.text.rstrip().endswith("# EOF")


def test_ingest_counts_outcomes_and_observes_freshness(sqlite_api: Api) -> None:
    api = sqlite_api
    before, _ = scrape(api)
    first, second = event(user="m1"), event(user="m2")
    batch = [first, second, event("no_such_type"), first]  # 2 accepted, 1 rejected, 1 duplicate
    r = api.request("POST", "/v1/events/batch", "ingest", json={"events": batch})
    assert r.status_code == 200
    assert (r.json()["accepted"], r.json()["rejected"], r.json()["duplicates"]) == (2, 1, 1)
    assert api.request("POST", "/v1/events", "ingest", json=first).status_code == 200  # dup
    after, _ = scrape(api)

    def delta(sample: str, /, **labels: str) -> float:
        return value(after, sample, **labels) - value(before, sample, **labels)

    assert delta("tastebud_events_total", status="accepted") == 2
    assert delta("tastebud_events_total", status="rejected") == 1
    assert delta("tastebud_events_total", status="duplicate") == 2
    # One observation per batch whose real-time update was applied (the duplicate applies none).
    assert delta("tastebud_realtime_freshness_seconds_count") == 1
    assert 0 <= delta("tastebud_realtime_freshness_seconds_sum") < 5
    assert delta("tastebud_realtime_freshness_seconds_bucket", le="5.0") == 1
    # The same batch's update, counted by its outcome (memory://: applied in time).
    assert delta("tastebud_realtime_updates_total", outcome="applied") == 1
    assert delta("tastebud_realtime_updates_total", outcome="dropped") == 0


def test_model_served_helper_sets_version_and_load_time(sqlite_api: Api) -> None:
    from tastebud.monitoring import record_model_served

    record_model_served("metrics-test", 7, loaded_at=1_700_000_000.0)
    families, _ = scrape(sqlite_api)
    assert value(families, "tastebud_model_version", name="metrics-test") == 7
    stamp = value(families, "tastebud_model_loaded_timestamp_seconds", name="metrics-test")
    assert stamp == 1_700_000_000.0


# -- multi-process mode -----------------------------------------------------------------------

_SCENARIO = textwrap.dedent(
    """
    import multiprocessing as mp
    import os
    import sys

    import tastebud.monitoring  # the supervisor imports it too (tastebud.cli does)


    def crashing_worker() -> None:
        from tastebud.monitoring import INGESTED_TOTAL, prepare_multiprocess, record_model_served

        prepare_multiprocess()
        INGESTED_TOTAL.labels(status="accepted").inc(3)
        record_model_served("recommendations", 9)
        os._exit(0)  # killed: no clean-up at exit


    def worker(out: str) -> None:
        from tastebud.monitoring import (
            INGESTED_TOTAL, observe_request, prepare_multiprocess, record_model_served, render,
        )

        prepare_multiprocess()
        INGESTED_TOTAL.labels(status="accepted").inc(4)
        record_model_served("recommendations", 5)
        observe_request("/v1/items/{item_id}", "GET", 200, 0.003)
        with open(out, "wb") as f:
            f.write(render()[0])


    if __name__ == "__main__":
        ctx = mp.get_context("spawn")  # as uvicorn starts its workers
        for target, args in ((crashing_worker, ()), (worker, (sys.argv[1],))):
            p = ctx.Process(target=target, args=args)
            p.start()
            p.join()
            assert p.exitcode == 0
    """
)


def parent(pid: int) -> int | None:
    """The parent of a live process (``/proc``), or ``None``."""
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def python(code: str, *args: str, env: dict[str, str]) -> str:
    r = subprocess.run(
        [sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_multiprocess_merges_workers_and_clears_earlier_runs(tmp_path: Path) -> None:
    metrics_dir = tmp_path / "prom"  # created by the first process that needs it
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}
    out = tmp_path / "scrape.txt"
    script = tmp_path / "scenario.py"  # a file: spawned children re-import the main module
    script.write_text(_SCENARIO)
    r = subprocess.run(
        [sys.executable, str(script), str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    merged = parse(out.read_text())
    # Counts of a worker that died stay in the total (totals never go backwards mid-run); its
    # model version does not (livemax over live workers), and no pid label is exposed.
    assert value(merged, "tastebud_events_total", status="accepted") == 7
    assert value(merged, "tastebud_model_version", name="recommendations") == 5
    route = {"route": "/v1/items/{item_id}", "method": "GET", "status": "200"}
    assert value(merged, "tastebud_request_seconds_count", **route) == 1
    # Plain writers (no prepare) are merged by any reader.
    writer = "import tastebud.monitoring as m; m.INGESTED_TOTAL.labels('rejected').inc(2)"
    python(writer, env=env)
    python(writer, env=env)
    read = "import sys, tastebud.monitoring as m; sys.stdout.write(m.render()[0].decode())"
    assert value(parse(python(read, env=env)), "tastebud_events_total", status="rejected") == 4
    # A new server run starts from zero: the files of earlier runs are deleted.
    fresh = "from tastebud.monitoring import prepare_multiprocess; prepare_multiprocess()\n" + read
    again = parse(python(fresh, env=env))
    assert value(again, "tastebud_events_total", status="accepted") == 0
    assert value(again, "tastebud_events_total", status="rejected") == 0
    assert value(again, "tastebud_model_version", name="recommendations") == 0


@pytest.mark.slow
def test_every_worker_of_a_multiprocess_server_reports_the_whole_server(
    server_factory: Callable[..., Server], tmp_path: Path
) -> None:
    metrics_dir = tmp_path / "prom"
    first = server_factory()  # migrates the database; we need a key
    settings = Settings(
        data_dir=first.env["TASTEBUD_DATA_DIR"],
        pseudonym_key=first.env["TASTEBUD_PSEUDONYM_KEY"],
        fernet_keys=first.env["TASTEBUD_FERNET_KEYS"],
    )
    services = build_services(settings, migrate=False)
    key = services.keys.create("metrics", "ingest")[1]
    services.close()
    first.stop()
    env = {**first.env, "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}
    # What a previous server run left behind must not be counted.
    stale = "import tastebud.monitoring as m; m.INGESTED_TOTAL.labels('accepted').inc(9)"
    python(stale, env=env)
    multi = Server(env, free_port())
    with multi.log.open("ab") as log:
        multi.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tastebud.cli",
                "serve",
                "--port",
                str(multi.port),
                "--workers",
                "2",
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    workers: list[int] = []
    stopped: set[int] = set()
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:  # the socket listens once a worker has started
                if httpx.get(multi.url + "/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        while len(workers) < 2 and time.monotonic() < deadline:
            # Each worker writes its value files from the moment it imports tastebud.
            pids = {int(p.stem.rsplit("_", 1)[1]) for p in metrics_dir.glob("counter_*.db")}
            workers = sorted(p for p in pids if parent(p) == multi.proc.pid)
            time.sleep(0.2)
        assert len(workers) == 2, multi.log.read_text()[-3000:]
        assert httpx.get(multi.url + "/readyz", timeout=30).status_code == 200
        with Client(multi.url, key) as tb:
            assert tb.send([event(user=f"mp-{i}") for i in range(5)]).accepted == 5

        def alone(pid: int) -> list[httpx.Response]:
            """Requests on new connections while the other worker is frozen: ``pid`` answers."""
            other = next(w for w in workers if w != pid)
            os.kill(other, signal.SIGSTOP)
            stopped.add(other)
            try:
                return [httpx.get(multi.url + path, timeout=30) for path in ["/healthz"] * 10]
            finally:
                os.kill(other, signal.SIGCONT)
                stopped.discard(other)

        for pid in workers:
            assert all(r.status_code == 200 for r in alone(pid))
        healthz = {"route": "/healthz", "method": "GET", "status": "200"}
        for pid in workers:
            other = next(w for w in workers if w != pid)
            os.kill(other, signal.SIGSTOP)
            stopped.add(other)
            families = parse(httpx.get(multi.url + "/metrics", timeout=30).text)
            os.kill(other, signal.SIGCONT)
            stopped.discard(other)
            # Either worker alone reports both workers' requests, and nothing of the old run.
            assert value(families, "tastebud_request_seconds_count", **healthz) == 20, pid
            assert value(families, "tastebud_events_total", status="accepted") == 5, pid  # not 14
            assert value(families, "tastebud_realtime_freshness_seconds_count") == 1, pid
    finally:
        for pid in stopped:
            os.kill(pid, signal.SIGCONT)
        multi.stop()
