"""The quickstart's demo experiment (issue 17): the production model against itself with a
larger exploration share, started through the API and played by a few hundred simulated users
(their planted tastes decide their clicks, with position bias), so that ``tastebud experiments
results demo-exploration`` has something to show right after ``make run``."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    from tastebud.simulator import Simulator

__all__ = ["DEMO_EXPERIMENT", "DemoRun", "demo_experiment"]

DEMO_EXPERIMENT = "demo-exploration"
"""The demo experiment's name."""

_SPEC: dict[str, Any] = {
    "name": DEMO_EXPERIMENT,
    "hypothesis": "A larger exploration share (0.3 instead of 0.1) finds items users click more",
    "layer": "demo",
    "variants": [
        {"name": "control"},
        {"name": "explore", "params": {"exploration_share": 0.3}},
    ],
    "primary_metric": "ctr",
    "min_duration_days": 7,
}


@dataclass(frozen=True)
class DemoRun:
    """What the demo did."""

    ready: bool
    """A recommendations model is in production (without one there is nothing to test)."""
    created: bool
    """The experiment was created and started now (otherwise it existed: nothing was sent)."""
    lists: int
    """Lists served to simulated users."""
    clicks: int
    """Clicks they sent back."""


def demo_experiment(
    url: str, keys: dict[str, str], sim: Simulator, *, users: int = 300, wait_s: float = 15.0
) -> DemoRun:
    """Create and start the demo experiment unless it exists, then let ``users`` simulated
    users ask for a list each and click on it.

    Args:
        url: The API.
        keys: The quickstart's API keys by scope.
        sim: The simulation whose traffic was sent (its users and planted tastes).
        users: How many simulated users play.
        wait_s: How long to wait for the server to serve the started experiment.
    """
    from tastebud.client import Client
    from tastebud.simulator.experiments import ExperimentPlayer

    admin = {"Authorization": f"Bearer {keys['admin']}"}
    serving = {"Authorization": f"Bearer {keys['serve']}"}
    with httpx.Client(base_url=url, timeout=30) as http:
        first = sim.user_id(0)
        if http.get(f"/v1/users/{first}/recommendations", headers=serving).status_code == 503:
            return DemoRun(False, False, 0, 0)
        r = http.get(f"/v1/experiments/{DEMO_EXPERIMENT}", headers=admin)
        if r.status_code == 200:
            return DemoRun(True, False, 0, 0)
        http.post("/v1/experiments", json=_SPEC, headers=admin).raise_for_status()
        http.post(f"/v1/experiments/{DEMO_EXPERIMENT}/start", headers=admin).raise_for_status()
    player = ExperimentPlayer(sim, seed=1)
    ids = [sim.user_id(u) for u in range(min(users, sim.config.users))]
    lists = clicks = 0
    with Client(url, keys["serve"]) as serve, Client(url, keys["ingest"]) as ingest:
        deadline = time.monotonic() + wait_s
        # The server picks a started experiment up within experiment_poll_seconds.
        while not serve.recommendations(ids[0], 10).experiments:
            if time.monotonic() > deadline:
                break
            time.sleep(0.2)
        events = []
        for user in ids:
            answer = serve.recommendations(user, 10)
            lists += 1
            items = [i.item_id for i in answer.items]
            for pos in player.play(user, items):
                events.append(
                    {
                        "event_id": f"demo-click-{answer.list_id}-{pos}",
                        "event_type": "click",
                        "user_id": user,
                        "timestamp": time.time(),
                        "data": {"item_id": items[pos], "element_id": f"rec-slot-{pos}"},
                    }
                )
        clicks = len(events)
        ingest.send(events)
    return DemoRun(True, True, lists, clicks)
