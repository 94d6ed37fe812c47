"""Training jobs end to end (issue 7): full and incremental training into the registry, the
consent filter, and the whole cycle (train, register, approve, promote, serve, train again,
roll back) through the CLI and the API of two real server processes, with a request loop
running during every swap."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from tastebud.config import Settings
from tastebud.registry import checklist
from tastebud.registry.recommender import load_model
from tastebud.services import Services, build_services
from tastebud.simulator import SimConfig, Simulator
from tastebud.training.recommender_jobs import train_incremental, train_recommendations
from tastebud.worker import job_context
from test_cli import run

from conftest import Server

FAST_MODEL = {"model": "tastebud_seq", "tuning": False}


def ingest(services: Services, events: list[dict[str, Any]]) -> None:
    for i in range(0, len(events), 5000):
        result = services.ingestor.ingest(events[i : i + 5000], source="import")
        assert result.rejected == 0


def load_sim(services: Services, users: int = 150, days: int = 20) -> list[dict[str, Any]]:
    """Load the catalogue, the users' attributes and the first 3/4 of the traffic; returns the
    rest."""
    sim = Simulator(SimConfig(users=users, items=200, days=days, seed=3))
    assert services.catalog.put_items(list(sim.items()), 0).count("rejected") == 0
    # User attributes too: without groups to compare, bias_analysis is "not checked".
    assert services.catalog.put_users(list(sim.users()), 0).count("rejected") == 0
    events = sorted(sim.events(), key=lambda e: e["timestamp"])
    cut = len(events) * 3 // 4
    ingest(services, events[:cut])
    return events[cut:]


def most_active(events: list[dict[str, Any]]) -> str:
    counts = Counter(str(e["user_id"]) for e in events if "item_id" in e.get("data", {}))
    return counts.most_common(1)[0][0]


def test_full_then_incremental_training(any_services: Services) -> None:
    services = any_services
    later = load_sim(services)
    excluded = services.pseudonymizer.user(most_active(later))
    services.consent_log.record(excluded, {"personalization": False}, 0)
    ctx = job_context(services, "test")
    v1 = train_recommendations(ctx, **FAST_MODEL)  # type: ignore[arg-type]
    assert (v1.name, v1.version, v1.aliases) == ("recommendations", 1, ("candidate",))
    assert v1.metrics["test"]["ndcg@10"] > 0 and "popularity" in v1.metrics["baseline"]
    assert v1.lineage["consent"]["excluded_users"] == 1
    data = v1.lineage["data"]
    assert data["window_end_ms"] > data["window_start_ms"] and data["users"] > 100
    assert v1.lineage["code_version"].startswith("tastebud ")
    assert v1.lineage["features"] == {}  # no snapshot built before this run
    path = services.registry.artifact_path(v1)
    names = {p.name for p in path.iterdir()}
    assert {
        "config.json",
        "params.npz",
        "users.json",
        "items.json",
        "metrics.json",
        "model_card.md",
        "monitoring.json",
        "lineage.json",
        "manifest.json",
    } <= names
    base = load_model(path)
    assert excluded not in base.users and base.seen is not None
    assert "tastebud_seq" in (path / "model_card.md").read_text()
    items = {
        i.name: i for i in checklist(services.registry, v1, services.settings.governance).items
    }
    assert items["privacy"].passed and items["model_card"].passed and items["monitoring"].passed

    # Nothing new: nothing registered. Then the last quarter of the traffic arrives.
    assert train_incremental(ctx).version is None
    ingest(services, later)
    # A user of v1 withdraws personalization consent: the update forgets them.
    withdrawn = base.users.ids[5]
    services.consent_log.record(withdrawn, {"personalization": False}, 1)
    inc = train_incremental(ctx)
    assert inc.version is not None and inc.version.version == 2 and inc.base_version == 1
    assert inc.changed_users > 0
    v2 = inc.version
    assert v2.lineage["job"] == "incremental" and v2.lineage["parent"]["version"] == 1
    assert v2.metrics["inherited_from"] == 1
    assert v2.lineage["data"]["window_end_ms"] > data["window_end_ms"]
    assert v2.lineage["features"]["snapshot_id"] >= 1  # features refreshed first
    updated = load_model(services.registry.artifact_path(v2))
    assert len(updated.users) >= len(base.users) and excluded not in updated.users
    assert withdrawn not in updated.users and v2.lineage["update"]["forgotten_users"] == 1
    assert updated.seen is not None and base.seen is not None
    assert updated.seen[5].nnz == 0  # no history kept for the withdrawn user
    assert updated.seen.nnz > base.seen.nnz


SECRETS: dict[str, str] = {}


def _cli(args: list[str], data_dir: Path) -> str:
    r = run(args, data_dir, **SECRETS)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


class Loop:
    """Requests recommendations from every server until stopped; counts every answer."""

    def __init__(self, servers: list[Server], key: str, user: str) -> None:
        self.servers, self.user = servers, user
        self.headers = {"Authorization": f"Bearer {key}"}
        self.answers: Counter[tuple[int, str]] = Counter()
        self.count = 0  # answers so far (read from the test's thread while this one counts)
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(timeout=10) as client:
            while not self._stop.is_set():
                for s in self.servers:
                    try:
                        r = client.get(
                            f"{s.url}/v1/users/{self.user}/recommendations?k=5",
                            headers=self.headers,
                        )
                    except httpx.HTTPError as exc:
                        self.errors.append(repr(exc))
                        continue
                    if r.status_code != 200:
                        self.errors.append(f"{r.status_code} {r.text[:200]}")
                    else:
                        self.answers[(s.port, r.headers["X-Tastebud-Model"])] += 1
                        self.count += 1

    def until(self, answers: int, limit: float = 120.0) -> None:
        """Wait until the loop has counted ``answers`` answers (the limit only stops a hang)."""
        deadline = time.monotonic() + limit
        while self.count < answers and time.monotonic() < deadline:
            time.sleep(0.05)

    def __enter__(self) -> Loop:
        self._thread.start()
        return self

    def __exit__(self, *_: Any) -> None:
        self._stop.set()
        self._thread.join()


def wait_for(servers: list[Server], key: str, user: str, version: int) -> None:
    """Wait until every server answers with ``version``. The limit only keeps a broken swap from
    hanging the suite: how fast a swap is, is measured by ``bench/hotswap.py``."""
    limit = 120.0
    t0 = time.monotonic()
    want = f"recommendations/v{version}"
    pending = list(servers)
    while pending and time.monotonic() - t0 < limit:
        pending = [
            s
            for s in pending
            if httpx.get(
                f"{s.url}/v1/users/{user}/recommendations",
                timeout=5,
                headers={"Authorization": f"Bearer {key}"},
            ).headers.get("X-Tastebud-Model")
            != want
        ]
        time.sleep(0.1)
    assert not pending, f"not serving {want} within {limit} s"


# Admin calls swap models in two server processes while a loop keeps asking for
# recommendations: on a loaded 2-core machine one took over httpx's default 5 s (CI, once).
_http = httpx.Client(timeout=30)


@pytest.mark.slow
def test_full_cycle_through_cli_and_api_with_hot_swaps(
    server_factory: Any, tmp_path: Path, secret_env: dict[str, str]
) -> None:
    data_dir = tmp_path / "server-data"
    # An untuned model on 150 simulated users ranks about as well as popularity: the floor is
    # configured below popularity for this test (the default asks for at least popularity).
    policy = '{"min_ndcg10_over_popularity": 0.8}'
    SECRETS.update(
        TASTEBUD_PSEUDONYM_KEY=secret_env["pseudonym_key"],
        TASTEBUD_FERNET_KEYS=secret_env["fernet_keys"],
        TASTEBUD_GOVERNANCE=policy,
    )
    settings = Settings(
        data_dir=data_dir,
        pseudonym_key=secret_env["pseudonym_key"],
        fernet_keys=secret_env["fernet_keys"],
    )
    services = build_services(settings, migrate=True)
    later = load_sim(services)
    serve_key = services.keys.create("test-serve", "serve")[1]
    admin_key = services.keys.create("test-admin", "admin")[1]
    services.close()
    train = ["train", "--model", "tastebud_seq", "--no-tune"]
    assert "registered recommendations v1" in _cli(train, data_dir)
    fail = run(["models", "promote", "recommendations", "1"], data_dir, **SECRETS)
    assert fail.returncode == 1 and "approval" in fail.stderr
    _cli(["models", "approve", "recommendations", "1"], data_dir)
    shown = json.loads(_cli(["models", "show", "recommendations", "1", "--json"], data_dir))
    # 150 simulated users: no attribute has two groups of 50 test users, so the bias analysis
    # could not be checked; everything else passes. The operator waives it, on the record.
    status = {i["name"]: i["status"] for i in shown["checklist"]["items"]}
    assert status.pop("bias_analysis") == "not_checked" and set(status.values()) == {"pass"}
    waive = ["--waive", "bias_analysis", "--reason", "150 simulated users"]
    _cli(["models", "promote", "recommendations", "1", *waive], data_dir)

    env = {"TASTEBUD_MODEL_POLL_SECONDS": "1", "TASTEBUD_GOVERNANCE": policy}
    a, b = server_factory(**env), server_factory(**env)
    user = "nb-user-0000003"
    wait_for([a, b], serve_key, user, 1)
    admin = {"Authorization": f"Bearer {admin_key}"}
    with Loop([a, b], serve_key, user) as loop:
        # Train again on more data (CLI), approve and promote through server A's API: both
        # processes serve v2, without a failed request.
        ingest_dir = build_services(settings)
        ingest(ingest_dir, later)
        ingest_dir.close()
        assert "registered recommendations v2" in _cli(train, data_dir)
        r = _http.post(f"{a.url}/v1/models/recommendations/versions/2/promote", headers=admin)
        assert r.status_code == 409 and r.json()["error"]["code"] == "checklist_failed"
        r = _http.post(
            f"{a.url}/v1/models/recommendations/versions/2/approve",
            headers=admin,
            json={"reason": "looks good"},
        )
        assert r.status_code == 200 and r.json()["approval"]["by"].startswith("key:")
        r = _http.post(
            f"{a.url}/v1/models/recommendations/versions/2/promote",
            headers=admin,
            json={"alias": "production", "waive": ["bias_analysis"], "reason": "150 users"},
        )
        assert r.status_code == 200, r.text
        items = r.json()["checklist"]["items"]
        assert [i["name"] for i in items if i["status"] != "pass"] == ["bias_analysis"]
        assert "production" in r.json()["aliases"]
        wait_for([a, b], serve_key, user, 2)
        listed = _http.get(f"{b.url}/v1/models", headers={"Authorization": f"Bearer {serve_key}"})
        model = listed.json()["models"][0]
        assert model["aliases"]["production"] == 2 and model["serving"] == 2
        # Roll back from the CLI: both processes are back on v1.
        assert "production is v1 again" in _cli(["models", "rollback", "recommendations"], data_dir)
        wait_for([a, b], serve_key, user, 1)
        # And forward again through the API's rollback... of the rollback is a promotion.
        r = _http.post(f"{b.url}/v1/models/recommendations/versions/2/promote", headers=admin)
        assert r.status_code == 409  # every promotion to production states its waivers
        r = _http.post(
            f"{b.url}/v1/models/recommendations/versions/2/promote",
            headers=admin,
            json={"waive": ["bias_analysis"], "reason": "150 users"},
        )
        assert r.status_code == 200
        wait_for([a, b], serve_key, user, 2)
        r = _http.post(
            f"{b.url}/v1/models/recommendations/rollback", headers=admin, json={"reason": "test"}
        )
        assert r.status_code == 200 and r.json()["version"] == 1
        wait_for([a, b], serve_key, user, 1)
        loop.until(loop.count + 10)  # a few more answers after the last swap
    assert loop.errors == [], loop.errors[:5]
    assert sum(loop.answers.values()) > 50
    seen = {version for (_, version) in loop.answers}
    assert seen == {"recommendations/v1", "recommendations/v2"}
    compare = json.loads(_cli(["models", "compare", "recommendations", "--json"], data_dir))
    assert set(compare["metrics"]["ndcg@10"]) == {"1", "2"}
    listing = _cli(["models", "list"], data_dir)
    assert "production" in listing and "tastebud_seq" in listing
    # Tampering with one byte of v2 is detected: it can no longer be promoted or served.
    v2 = next(p for p in (data_dir / "artifacts" / "registry" / "recommendations" / "v2").iterdir())
    params = v2 / "params.npz"
    blob = bytearray(params.read_bytes())
    blob[100] ^= 0xFF
    params.write_bytes(bytes(blob))
    bad = run(["models", "promote", "recommendations", "2"], data_dir, **SECRETS)
    assert bad.returncode == 1 and "privacy" in bad.stderr
    r = _http.get(
        f"{a.url}/v1/models/recommendations/versions/2",
        headers={"Authorization": f"Bearer {serve_key}"},
    )
    assert not r.json()["checklist"]["passed"]


def test_worker_cli_runs_jobs_and_reports(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    settings = Settings(data_dir=data_dir)
    services = build_services(settings, migrate=True)
    load_sim(services, users=60, days=10)
    services.close()
    out = _cli(["worker", "--job", "incremental", "--now"], data_dir)
    assert "incremental: succeeded" in out and "run `tastebud train --full` first" in out
    out = _cli(["worker", "--job", "feature_review", "--now"], data_dir)
    assert "feature_review: succeeded" in out
    reports = list((data_dir / "artifacts" / "reports").glob("feature-review-*.md"))
    assert len(reports) == 1
    text = reports[0].read_text()
    assert "| session_count |" in text or "| feature |" in text
    assert "no predictor in production yet" in text
    status = _cli(["worker", "--status"], data_dir)
    assert "feature_review  last: succeeded (attempt 1); due: later" in status
    assert "full            last: never; due: now" in status
    bad = run(["worker", "--job", "nope"], data_dir)
    assert bad.returncode == 1 and "unknown job" in bad.stderr
