"""An experiment through the real API (issue 17, point 9): assignment, exposure in the answer
and the stored impression, outcomes played by the simulator's users from their planted tastes
(with position bias), and results, where a planted better variant wins and an A/A test does
not; plus an interleaving experiment and a user outside the population."""

from __future__ import annotations

import secrets
import shutil
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet

from tastebud.config import Settings
from tastebud.registry import promote
from tastebud.services import Services, build_services
from tastebud.simulator import SimConfig, Simulator
from tastebud.simulator.experiments import ExperimentPlayer
from tastebud.training.recommender_jobs import train_recommendations
from tastebud.worker import job_context
from test_jobs import ingest

from conftest import Api

USERS = 1200


def _prepare(settings: Settings) -> Simulator:
    """Traffic of the simulated world, a production model (v1, personalized) and a planted
    worse one (v2, popularity), prepared before the API starts (training forks worker
    processes, which must not inherit the API's database connections)."""
    services = build_services(settings, migrate=True)
    try:
        return _load(services)
    finally:
        services.close()


def _load(services: Services) -> Simulator:
    start = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(
        days=40
    )
    sim = Simulator(SimConfig(users=USERS, items=150, days=35, seed=11, start=start))
    assert services.catalog.put_items(list(sim.items()), 0).count("rejected") == 0
    assert services.catalog.put_users(list(sim.users()), 0).count("rejected") == 0
    ingest(services, list(sim.events()))
    ctx = job_context(services, "test")
    good = train_recommendations(ctx, model="tastebud_seq", tuning=False)
    promote(
        services.registry,
        services.settings.governance,
        good.name,
        good.version,
        actor="test",
        force=True,
        reason="experiments test",
    )
    worse = train_recommendations(ctx, model="popularity", tuning=False)
    assert (good.version, worse.version) == (1, 2)
    return sim


def _play(api: Api, player: ExperimentPlayer, users: list[str], visits: int) -> Counter[str]:
    """Each user asks for a list and clicks on it as their planted tastes say; returns the
    exposures seen in the answers, by experiment=variant."""
    seen: Counter[str] = Counter()
    clicks = []
    for visit in range(visits):
        for user in users:
            r = api.request("GET", f"/v1/users/{user}/recommendations", "serve", params={"k": 10})
            assert r.status_code == 200, r.text
            body = r.json()
            header = r.headers.get("X-Tastebud-Experiments")
            exposures = {e["name"]: e["variant"] for e in body.get("experiments", [])}
            assert header == ", ".join(f"{k}={v}" for k, v in exposures.items()) or (
                header is None and not exposures
            )
            seen.update(f"{k}={v}" for k, v in exposures.items())
            items = [i["item_id"] for i in body["items"]]
            for pos in player.play(user, items, visit=visit):
                clicks.append(
                    {
                        "event_id": f"click-{body['list_id']}-{pos}",
                        "event_type": "click",
                        "user_id": user,
                        "timestamp": time.time(),
                        "data": {"item_id": items[pos], "element_id": f"slot-{pos}"},
                    }
                )
    for i in range(0, len(clicks), 1000):
        r = api.request("POST", "/v1/events/batch", "ingest", json={"events": clicks[i : i + 1000]})
        assert r.status_code == 200 and r.json()["rejected"] == 0, r.text
    return seen


def _results(api: Api, name: str, exposed: int) -> dict[str, Any]:
    """The results once every impression is stored (they are flushed in the background)."""
    deadline = time.monotonic() + 30
    while True:
        r = api.request("GET", f"/v1/experiments/{name}/results", "serve")
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        if sum(body["users"].values()) >= exposed or time.monotonic() > deadline:
            return body
        time.sleep(0.2)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str], Simulator]:
    """One prepared data directory for the module (each test works on a copy)."""
    data_dir = tmp_path_factory.mktemp("experiments") / "data"
    keys = {"pseudonym_key": secrets.token_hex(32), "fernet_keys": Fernet.generate_key().decode()}
    return data_dir, keys, _prepare(Settings(data_dir=data_dir, **keys))


def _api(
    prepared: tuple[Path, dict[str, str], Simulator],
    make_api: Callable[[Settings], Api],
    tmp_path: Path,
) -> tuple[Api, Simulator]:
    source, keys, sim = prepared
    data_dir = tmp_path / "data"
    shutil.copytree(source, data_dir)
    settings = Settings(data_dir=data_dir, experiment_poll_seconds=0.1, **keys)
    return make_api(settings), sim


@pytest.mark.slow
def test_an_experiment_through_the_api(
    prepared: tuple[Path, dict[str, str], Simulator],
    make_api: Callable[[Settings], Api],
    tmp_path: Path,
) -> None:
    api, sim = _api(prepared, make_api, tmp_path)
    spec = {
        "name": "ranker",
        "hypothesis": "the personalized model gets more clicks than popularity",
        "salt": "ranker-test-salt",  # the same split every run: the test cannot flake
        "layer": "models",
        "variants": [{"name": "personal"}, {"name": "popular", "model": {"version": 2}}],
        "population": {"visitors": "returning"},
        "min_duration_days": 0,
        "min_users_per_variant": 500,
    }
    assert api.request("POST", "/v1/experiments", json=spec).status_code == 201
    assert api.request("POST", "/v1/experiments", "serve", json=spec).status_code == 403
    aa = {
        "name": "aa",
        "hypothesis": "nothing changes",
        "salt": "aa-test-salt",
        "layer": "aa",
        "variants": [{"name": "one"}, {"name": "two"}],
        "min_duration_days": 0,
    }
    assert api.request("POST", "/v1/experiments", json=aa).status_code == 201
    r = api.request("PUT", "/v1/experiments/aa", json=spec)  # another experiment's spec
    assert r.status_code == 422 and "is not the experiment's 'aa'" in r.text
    for name in ("ranker", "aa"):
        r = api.request("POST", f"/v1/experiments/{name}/start")
        assert r.status_code == 200 and r.json()["status"] == "running", r.text
    r = api.request("PUT", "/v1/experiments/ranker", json=spec)
    assert r.status_code == 409 and "only a draft can be edited" in r.text
    time.sleep(0.5)  # every process (here: one) picks them up within experiment_poll_seconds

    users = sorted(sim.truth()["users"])
    seen = _play(api, ExperimentPlayer(sim, seed=3), users, visits=6)
    ranker = {k: v for k, v in seen.items() if k.startswith("ranker=")}
    assert set(ranker) == {"ranker=personal", "ranker=popular"}
    assert set(k for k in seen if k.startswith("aa=")) == {"aa=one", "aa=two"}

    # A user the model does not know is outside "returning": no exposure, production answer.
    r = api.request("GET", "/v1/users/a-stranger/recommendations", "serve")
    assert r.status_code == 200
    assert [e["name"] for e in r.json().get("experiments", [])] == ["aa"]

    res = _results(api, "ranker", exposed=int(USERS * 0.8))
    assert sum(res["users"].values()) >= USERS * 0.8  # the simulated users the model knows
    assert not res["srm"]["flagged"] and res["mixed_users"] == 0
    (cmp,) = res["primary"]["comparisons"]
    assert cmp["variant"] == "popular" and cmp["verdict"] == "worse", res
    assert res["decision"]["winner"] is None
    assert "popular is worse than personal on CTR" in res["decision"]["text"]
    aa_res = _results(api, "aa", exposed=USERS)
    assert aa_res["primary"]["comparisons"][0]["verdict"] == "inconclusive", aa_res["decision"]
    assert aa_res["decision"]["winner"] is None

    # The stored impressions record experiment, variant and model version.
    svc = api.services
    events = svc.store.events_for_user(svc.pseudonymizer.user(users[0]))
    imps = [e for e in events if e["event_type"] == "impression"]
    assert imps and all("ranker" in e["data"]["experiments"] for e in imps)
    variant = imps[0]["data"]["experiments"]["ranker"]
    version = "recommendations/v2" if variant == "popular" else "recommendations/v1"
    assert {e["data"]["model_version"] for e in imps} == {version}

    # Conclude with the winner promoted through the registry (checklist forced here).
    r = api.request(
        "POST",
        "/v1/experiments/ranker/conclude",
        json={"winner": "personal", "promote": True, "reason": "test"},
    )
    assert r.status_code == 422 and "serves the production model" in r.text
    r = api.request("POST", "/v1/experiments/ranker/conclude", json={"winner": "personal"})
    assert r.status_code == 200 and r.json()["status"] == "concluded"
    log = [e["action"] for e in r.json()["log"]]
    assert log == ["create", "start", "conclude"]


@pytest.mark.slow
def test_an_interleaving_experiment_through_the_api(
    make_api: Callable[[Settings], Api], make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(experiment_poll_seconds=0.1)
    sim = _prepare(settings)
    api = make_api(settings)
    spec = {
        "name": "draft",
        "kind": "interleaving",
        "salt": "draft-test-salt",
        "hypothesis": "users prefer the personalized ranking",
        "variants": [{"name": "personal"}, {"name": "popular", "model": {"version": 2}}],
        "min_duration_days": 0,
    }
    assert api.request("POST", "/v1/experiments", json=spec).status_code == 201
    assert api.request("POST", "/v1/experiments/draft/start").status_code == 200
    time.sleep(0.5)
    users = sorted(sim.truth()["users"])
    _play(api, ExperimentPlayer(sim, seed=5), users, visits=3)
    res = _results(api, "draft", exposed=len(users))
    inter = res["interleaving"]
    assert inter is not None and inter["preferred"] == "personal", inter
    assert inter["wins"]["personal"] > inter["wins"]["popular"]
    assert res["decision"]["text"].startswith("personal is preferred over popular")


@pytest.mark.slow
def test_rank_and_similar_serve_the_variant(
    prepared: tuple[Path, dict[str, str], Simulator],
    make_api: Callable[[Settings], Api],
    tmp_path: Path,
) -> None:
    api, sim = _api(prepared, make_api, tmp_path)
    spec = {
        "name": "surfaces",
        "hypothesis": "popularity ranks content as well",
        "surfaces": ["rank", "similar"],
        "variants": [{"name": "control"}, {"name": "popular", "model": {"version": 2}}],
    }
    assert api.request("POST", "/v1/experiments", json=spec).status_code == 201
    assert api.request("POST", "/v1/experiments/surfaces/start").status_code == 200
    time.sleep(0.5)
    items = [i["item_id"] for i in sim.items()][:5]
    seen: dict[str, set[int]] = {"control": set(), "popular": set()}
    users = sorted(sim.truth()["users"])[:40]
    for user in users:
        r = api.request(
            "POST",
            f"/v1/users/{user}/rank",
            "serve",
            json={"items": [{"id": i} for i in items]},
        )
        assert r.status_code == 200, r.text
        (exposure,) = r.json()["experiments"]
        assert r.headers["X-Tastebud-Experiments"] == f"surfaces={exposure['variant']}"
        seen[exposure["variant"]].add(r.json()["model"]["version"])
        r = api.request(
            "GET", f"/v1/items/{items[0]}/similar", "serve", params={"k": 3, "user_id": user}
        )
        assert r.status_code == 200, r.text
        assert r.json()["experiments"] == [exposure]
    assert seen == {"control": {1}, "popular": {2}}
    # Without a user, similar is the production answer, and recommendations are untouched.
    r = api.request("GET", f"/v1/items/{items[0]}/similar", "serve")
    assert "experiments" not in r.json() and r.json()["model"]["version"] == 1
    r = api.request("GET", f"/v1/users/{users[0]}/recommendations", "serve")
    assert "experiments" not in r.json()
    # Each exposed answer is an impression with its surface.
    deadline = time.monotonic() + 10
    svc = api.services
    key = svc.pseudonymizer.user(users[0])
    while True:
        imps = [e for e in svc.store.events_for_user(key) if e["event_type"] == "impression"]
        surfaces = sorted(e["data"].get("surface", "recommendations") for e in imps)
        if len(imps) >= 3 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert surfaces == ["rank", "recommendations", "similar"]

    # Concluding with a winner promotes its model version through the registry: the
    # checklist is checked first (nothing changes when it fails), then the promotion.
    body = {"winner": "popular", "promote": True}
    r = api.request("POST", "/v1/experiments/surfaces/conclude", json=body)
    assert r.status_code == 409 and r.json()["error"]["code"] == "checklist_failed", r.text
    assert api.request("GET", "/v1/experiments/surfaces", "serve").json()["status"] == "running"
    body |= {"force": True, "reason": "won the surfaces experiment"}
    r = api.request("POST", "/v1/experiments/surfaces/conclude", json=body)
    assert r.status_code == 200, r.text
    assert (r.json()["status"], r.json()["winner"], r.json()["promoted_version"]) == (
        "concluded",
        "popular",
        2,
    )
    production = svc.registry.resolve("recommendations", "production")
    assert production is not None and production.version == 2
