"""The ``tastebud`` command, run as a user would (a real subprocess)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tastebud.config import Settings
from tastebud.services import build_services


def run(args: list[str], data_dir: Path, **env: str) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("TASTEBUD_")}
    full_env.update({"TASTEBUD_DATA_DIR": str(data_dir), **env})
    return subprocess.run(
        [sys.executable, "-m", "tastebud.cli", *args],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["db"],
        ["keys"],
        ["keys", "create"],
        ["keys", "list"],
        ["keys", "revoke"],
        ["db", "upgrade"],
        ["ingest"],
        ["serve"],
        ["quickstart"],
        ["evaluate"],
        ["train"],
    ],
)
def test_every_command_has_help(args: list[str], tmp_path: Path) -> None:
    r = run([*args, "--help"], tmp_path)
    assert r.returncode == 0, r.stderr
    assert "Usage" in r.stdout and len(r.stdout) > 200


def test_keys_create_list_revoke(tmp_path: Path) -> None:
    r = run(["keys", "create", "--scope", "serve", "--name", "backend"], tmp_path)
    assert r.returncode == 0, r.stderr
    key = r.stdout.split()[-1]
    assert key.startswith("tb_serve_")
    services = build_services(Settings(data_dir=tmp_path), migrate=False)
    assert services.keys.authenticate(key).scope == "serve"
    listing = run(["keys", "list"], tmp_path).stdout
    key_id = key.split("_")[2]
    assert key_id in listing and "backend" in listing and "active" in listing
    assert key.split("_", 3)[3] not in listing
    assert run(["keys", "revoke", key_id], tmp_path).returncode == 0
    assert "revoked" in run(["keys", "list"], tmp_path).stdout
    again = run(["keys", "revoke", key_id], tmp_path)
    assert again.returncode == 1 and "no active API key" in again.stderr
    bad = run(["keys", "create", "--scope", "root", "--name", "x"], tmp_path)
    assert bad.returncode == 1 and "scope must be one of" in bad.stderr


def test_production_without_secrets_is_a_config_error(tmp_path: Path) -> None:
    r = run(["keys", "list"], tmp_path, TASTEBUD_ENV="production")
    assert r.returncode == 2
    assert "TASTEBUD_PSEUDONYM_KEY" in r.stderr


def test_db_upgrade(tmp_path: Path) -> None:
    r = run(["db", "upgrade"], tmp_path)
    assert r.returncode == 0 and "revision 0004 (was empty)" in r.stdout
    r = run(["db", "upgrade"], tmp_path)
    assert "(was 0004)" in r.stdout


def test_ingest_file_counts_and_reports_bad_lines(tmp_path: Path) -> None:
    lines: list[Any] = []
    for i in range(1500):
        lines.append(
            json.dumps(
                {
                    "event_id": f"e{i}",
                    "event_type": "page_view",
                    "user_id": f"u{i % 7}",
                    "timestamp": "2026-11-01T00:00:00Z",
                }
            )
        )
    lines[10] = '{"event_type": "page_view", broken'
    lines[20] = json.dumps(
        {"event_type": "teleport", "user_id": "u", "timestamp": "2026-11-01T00:00:00Z"}
    )
    lines.insert(30, "")
    lines.append(lines[0])  # a duplicate
    f = tmp_path / "events.ndjson"
    f.write_text("\n".join(lines) + "\n")
    r = run(["ingest", str(f)], tmp_path / "d")
    assert r.returncode == 0, r.stderr
    assert "1,498 events accepted, 1 duplicates, 2 rejected" in r.stdout
    assert "(lines 11)" in r.stdout and "(lines 21)" in r.stdout
    again = run(["ingest", str(f)], tmp_path / "d")
    assert "0 events accepted, 1,499 duplicates, 2 rejected" in again.stdout
    missing = run(["ingest", str(tmp_path / "nope.ndjson")], tmp_path / "d")
    assert missing.returncode == 2 and "does not exist" in missing.stderr


def test_quickstart_no_serve_prints_url_and_keys(tmp_path: Path) -> None:
    from conftest import free_port

    port = free_port()
    r = run(["quickstart", "--no-serve", "--users", "20", "--days", "2", "--port", str(port)],
            tmp_path)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert f"http://127.0.0.1:{port}" in r.stdout
    assert "/v1/users/nb-user-0000042/profile" in r.stdout
    keys = [t for t in r.stdout.split() if t.startswith("tb_")]  # the "API keys" lines
    assert {k.split("_")[1] for k in keys} == {"ingest", "serve", "admin"}


@pytest.mark.parametrize(
    "args",
    [
        ["import"],
        ["import", "movielens"],
        ["import", "interactions"],
        ["import", "items"],
        ["import", "users"],
        ["simulate"],
    ],
)
def test_import_and_simulate_have_help(args: list[str], tmp_path: Path) -> None:
    r = run([*args, "--help"], tmp_path)
    assert r.returncode == 0 and "Usage" in r.stdout


def test_simulate_files_and_import_them(tmp_path: Path) -> None:
    out, truth = tmp_path / "ev.ndjson", tmp_path / "truth.json"
    items, users = tmp_path / "items.ndjson", tmp_path / "users.ndjson"
    world = ["simulate", "--users", "60", "--items", "80", "--days", "5", "--seed", "4"]
    r = run([*world, "--out", str(out), "--truth", str(truth), "--items-out", str(items),
             "--users-out", str(users)], tmp_path)  # fmt: skip
    assert r.returncode == 0, r.stderr
    n = sum(1 for _ in out.open())
    assert f"{n:,} events written" in r.stderr
    assert set(json.loads(truth.read_text())["users"]) <= {f"nb-user-{u:07d}" for u in range(60)}
    data = tmp_path / "d"
    assert "80 items (80 created" in run(["import", "items", str(items)], data).stdout
    assert "60 users (60 created" in run(["import", "users", str(users)], data).stdout
    r = run(["ingest", str(out)], data)
    assert f"{n:,} events accepted, 0 duplicates, 0 rejected" in r.stdout
    same = tmp_path / "again.ndjson"
    run([*world, "--out", str(same), "--workers", "1"], tmp_path)
    assert same.read_bytes() == out.read_bytes()
    r = run(["simulate", "--users", "5"], tmp_path)
    assert r.returncode == 2 and "give --out FILE" in r.stderr


def test_import_interactions_cli_reports_bad_lines(tmp_path: Path) -> None:
    f = tmp_path / "plays.tsv"
    f.write_text("userID\tartistID\tweight\n1\t10\t5\n1\t11\tmany\n2\t10\t3\n")
    r = run(
        [
            "import",
            "interactions",
            str(f),
            "--user",
            "userID",
            "--item",
            "artistID",
            "--weight",
            "weight",
        ],
        tmp_path,
    )
    assert r.returncode == 0, r.stderr
    assert "2 events accepted, 0 duplicates, 1 rejected" in r.stdout
    assert "weight 'many' is not a number (line 3)" in r.stdout
    bad = run(["import", "interactions", str(f), "--user", "nope", "--item", "artistID"], tmp_path)
    assert bad.returncode == 1 and "is not a column" in bad.stderr


@pytest.mark.slow
def test_quickstart_sends_simulated_traffic_over_http(tmp_path: Path) -> None:
    from conftest import free_port

    r = run(
        ["quickstart", "--no-serve", "--users", "200", "--days", "8", "--port", str(free_port())],
        tmp_path,
    )
    assert r.returncode == 0, r.stderr
    # make run ends with a trained model in production (issue 7).
    assert "recommendations v1 (tastebud_hybrid) in production" in r.stdout, r.stdout
    assert "simulated NetworkBuster traffic:" in r.stdout
    accepted = int(r.stdout.split("traffic: ")[1].split(" events")[0].replace(",", ""))
    assert accepted > 100 and "0 rejected" in r.stdout
    services = build_services(Settings(data_dir=tmp_path), migrate=False)
    assert services.store.count_events() == accepted
    assert services.store.count_items() == 200
    assert services.registry.resolve("recommendations").version == 1  # type: ignore[union-attr]
