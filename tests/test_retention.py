"""Retention (issue 9, item 3): per-type periods counted from ``received_ms``, applied by
``tastebud privacy retention`` and by the worker's ``retention`` job."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tastebud.config import Schedule, Settings
from tastebud.errors import ConfigError
from tastebud.events.retention import DAY_MS, apply_retention
from tastebud.rights import transparency_report
from tastebud.services import Services, build_services
from tastebud.worker import job_context
from tastebud.worker.schedule import JOBS, Worker

from conftest import event

NOW = int(time.time() * 1000)
DEFAULTS: dict[str, int] = Settings.model_fields["retention_days"].get_default(
    call_default_factory=True
)


def row(event_id: str, event_type: str, received_days: float, ts_days: float | None = None) -> Any:
    """An event row received ``received_days`` ago and stamped ``ts_days`` ago."""
    return {
        "event_id": event_id,
        "event_type": event_type,
        "user_key": "u" * 32,
        "ts_ms": NOW - int((received_days if ts_days is None else ts_days) * DAY_MS),
        "received_ms": NOW - int(received_days * DAY_MS),
        "data": {"n": 1},
    }


# (event_id, type, received days ago, event time days ago) -> kept with the default periods?
ROWS = [
    (row("load-40", "page_load", 40), False),  # performance events: 30 days
    (row("load-29", "page_load", 29), True),
    (row("error-31", "error", 31), False),
    (row("view-40", "page_view", 40), True),  # everything else: 395 days
    (row("view-400", "page_view", 400), False),
    (row("view-401", "page_view", 401), False),
    (row("click-394", "click", 394), True),
    (row("custom-396", "custom.newsletter_open", 396), False),
    # Historical imports: old event times, received today: kept on import day.
    (row("imported-view", "page_view", 0.01, ts_days=3000), True),
    (row("imported-load", "page_load", 0.01, ts_days=3000), True),
]
EXPECTED = {"custom.newsletter_open": 1, "error": 1, "page_load": 1, "page_view": 2}


def stored_ids(services: Services) -> set[str]:
    from sqlalchemy import select

    from tastebud.store import tables as t

    with services.store.engine.connect() as conn:
        return set(conn.execute(select(t.events.c.event_id)).scalars())


def test_defaults_delete_per_type_from_received_time(any_services: Services) -> None:
    any_services.store.insert_events([r for r, _ in ROWS])
    # Batches of 2: several transactions, each resuming after the last deleted id.
    deleted = apply_retention(any_services.store, DEFAULTS, NOW, batch_size=2)
    assert deleted == EXPECTED
    assert stored_ids(any_services) == {r["event_id"] for r, kept in ROWS if kept}
    assert apply_retention(any_services.store, DEFAULTS, NOW) == {}  # nothing left to delete
    # Both runs are in the transparency report (counts only).
    report = transparency_report(
        any_services.store, time.strftime("%Y-%m", time.gmtime(NOW / 1000))
    )
    assert (report.retention_runs, report.retention_deleted_events) == (2, 5)


def test_imported_history_survives_import_day(any_services: Services) -> None:
    old = [
        event(
            "page_load",
            user=f"user-{i}",
            timestamp="2019-05-01T10:00:00+00:00",
            data={"load_time_ms": 1200},
        )
        for i in range(3)
    ]
    assert any_services.ingestor.ingest(old, source="import").accepted == 3
    assert apply_retention(any_services.store, DEFAULTS, any_services.now_ms()) == {}
    assert any_services.store.count_events() == 3
    # ... and goes once its period has passed since it was received.
    later = any_services.now_ms() + 31 * DAY_MS
    assert apply_retention(any_services.store, DEFAULTS, later) == {"page_load": 3}


def test_configured_periods(any_services: Services) -> None:
    any_services.store.insert_events([r for r, _ in ROWS])
    # Without "*", types not named are kept forever.
    assert apply_retention(any_services.store, {"page_view": 39}, NOW) == {"page_view": 3}
    assert apply_retention(any_services.store, {"*": 35, "page_load": 1000}, NOW) == {
        "click": 1,
        "custom.newsletter_open": 1,
    }
    with pytest.raises(ConfigError, match="at least 1 day"):
        apply_retention(any_services.store, {"*": 0}, NOW)


def test_worker_runs_retention_on_its_schedule(any_services: Services, tmp_path: Path) -> None:
    assert "retention" in JOBS
    any_services.store.insert_events([r for r, _ in ROWS])
    ctx = job_context(any_services, "test")
    worker = Worker(ctx, Schedule(retention_hours=12), tmp_path, owner="w1")
    assert worker.retention_days == DEFAULTS
    assert worker.interval_ms("retention") == 12 * 3_600_000
    run = worker.run_job("retention")
    assert run is not None and run.status == "succeeded", run
    assert run.details == {"deleted": EXPECTED, "total": 5}
    assert worker.due("retention") is None  # done for the next 12 hours
    custom = Worker(ctx, Schedule(), tmp_path, owner="w1", retention_days={"*": 30})
    run = custom.run_job("retention")
    assert run is not None and run.details == {"deleted": {"click": 1, "page_view": 1}, "total": 2}


def cli(args: list[str], settings: Settings, secret_env: dict[str, str], **extra: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASTEBUD_")}
    env.update(
        {
            "TASTEBUD_DATA_DIR": str(settings.data_dir),
            "TASTEBUD_DATABASE_URL": settings.resolved_database_url(),
            "TASTEBUD_PSEUDONYM_KEY": secret_env["pseudonym_key"],
            "TASTEBUD_FERNET_KEYS": secret_env["fernet_keys"],
            **extra,
        }
    )
    r = subprocess.run(
        [sys.executable, "-m", "tastebud.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_cli_retention_and_worker_job(
    db_url: str, make_settings: Callable[..., Settings], secret_env: dict[str, str]
) -> None:
    settings = make_settings(database_url=db_url)
    services = build_services(settings, migrate=False)
    try:
        services.store.insert_events([r for r, _ in ROWS])
    finally:
        services.close()
    out = cli(["privacy", "retention"], settings, secret_env)
    assert "page_view" in out and "2 deleted (kept 395 days)" in out
    assert "page_load" in out and "1 deleted (kept 30 days)" in out
    assert "5 events deleted" in out
    again = cli(["privacy", "retention"], settings, secret_env)
    assert "no events older than their type's retention period" in again
    # The worker's job uses the configured periods (TASTEBUD_RETENTION_DAYS).
    periods = json.dumps({"*": 395, "page_view": 20})
    out = cli(
        ["worker", "--job", "retention", "--now"],
        settings,
        secret_env,
        TASTEBUD_RETENTION_DAYS=periods,
    )
    assert "retention: succeeded" in out and "deleted: {'page_view': 1}" in out
