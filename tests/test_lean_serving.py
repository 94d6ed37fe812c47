"""An API worker does not load the training stack (issue 16, point 3).

scikit-learn, LightGBM and matplotlib are heavy and matplotlib used to switch the process-wide
backend at import time. An API process loads none of them until a prediction is served (the
predictor is rebuilt from its verified files on first use); the import contract in
pyproject.toml keeps ``tastebud.serving`` and ``tastebud.api`` off ``tastebud.training`` and
``tastebud.evaluation``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tastebud.services import build_services
from tastebud.simulator import SimConfig, Simulator
from test_predictors import FAST

from conftest import register_predictor

HEAVY = ("lightgbm", "sklearn", "matplotlib", "tastebud.training", "tastebud.evaluation")

# Run in a fresh interpreter: this test process has loaded everything already.
_CHILD = """
import json, sys
from fastapi.testclient import TestClient
from tastebud.api.app import create_app
from tastebud.config import Settings

settings = Settings(**json.loads(sys.argv[1]))
key = sys.argv[2]
user = sys.argv[3]
heavy = json.loads(sys.argv[4])
seen = {}
with TestClient(create_app(settings)) as client:
    auth = {"Authorization": f"Bearer {key}"}
    client.get("/healthz")
    seen["recommendations"] = client.get(
        f"/v1/users/{user}/recommendations", headers=auth
    ).status_code
    client.get(f"/v1/users/{user}/profile", headers=auth)
    seen["before"] = sorted(m for m in heavy if m in sys.modules)
    seen["predictions"] = client.get(f"/v1/users/{user}/predictions", headers=auth).status_code
    seen["after"] = sorted(m for m in heavy if m in sys.modules)
print(json.dumps(seen))
"""


@pytest.mark.slow
def test_the_api_loads_no_training_stack_until_a_prediction(
    tmp_path: Path, secret_env: dict[str, str]
) -> None:
    values: dict[str, Any] = {"data_dir": str(tmp_path / "data"), **secret_env}
    from tastebud.config import Settings

    services = build_services(Settings(**values), migrate=True)
    try:
        start = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        sim = Simulator(
            SimConfig(users=200, items=60, days=65, seed=3, start=start - timedelta(70))
        )
        services.catalog.put_items(list(sim.items()), services.now_ms())
        services.ingestor.ingest(list(sim.events()))
        register_predictor(services, "churn", FAST, reason="lean serving test")
        key = services.keys.create("lean", "serve")[1]
        user = str(next(iter(sim.truth()["users"])))
    finally:
        services.close()

    env = {k: v for k, v in os.environ.items() if not k.startswith("TASTEBUD_")}
    r = subprocess.run(
        [sys.executable, "-c", _CHILD, json.dumps(values), key, user, json.dumps(HEAVY)],
        capture_output=True,
        text=True,
        timeout=240,
        env=env,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    seen = json.loads(r.stdout.strip().splitlines()[-1])
    assert seen["recommendations"] in (200, 503), seen
    assert seen["before"] == [], f"loaded by serving a recommendation: {seen['before']}"
    # The check can fail: serving a prediction does load LightGBM (and nothing of training).
    assert seen["predictions"] == 200, seen
    assert "lightgbm" in seen["after"]
    assert not {"tastebud.training", "tastebud.evaluation", "matplotlib"} & set(seen["after"])
