"""``tastebud quickstart`` (``make run``) as a new user runs it: a real process on a free port,
stopped with SIGINT at every stage, run again to continue (issue 15, points 3 and 15)."""

from __future__ import annotations

import json
import os
import queue
import signal
import socket
import sqlite3
import stat
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from conftest import free_port

ROOT = Path(__file__).resolve().parents[1]
SMALL = ["--users", "150", "--days", "12"]  # about 7,000 events: seconds per stage
STOPPED = "again to continue: keys and data are kept in"

# The line each stage starts with (the quickstart prints them so that a user, and this test,
# can tell where it is).
STAGES = {
    "sending": "sending the simulated catalogue, users and traffic",
    "training": "training the first models",
    "serving": "serving; press Ctrl+C to stop",
}
# A line printed only once the stage is over: it must be missing when stopped during it.
AFTER = {"sending": "simulated NetworkBuster traffic:", "training": "trained in"}


class Run:
    """A quickstart process whose merged output is read line by line in a thread."""

    def __init__(self, cmd: list[str], env: dict[str, str], **popen: Any) -> None:
        self.proc = subprocess.Popen(
            cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **popen
        )
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._queue.put(line)
        self._queue.put(None)

    def wait_for(self, text: str, limit: float = 240.0) -> None:
        """Read output until a line contains ``text`` (fails if the process ends first)."""
        while True:
            line = self._queue.get(timeout=limit)
            if line is None:
                pytest.fail(f"ended before {text!r}:\n" + "".join(self.lines))
            self.lines.append(line)
            if text in line:
                return

    def finish(self, limit: float) -> str:
        """Wait for the exit (at most ``limit`` s); returns the whole output."""
        try:
            self.proc.wait(limit)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            pytest.fail(f"still running {limit} s later:\n" + "".join(self.lines))
        while (line := self._queue.get(timeout=10)) is not None:
            self.lines.append(line)
        return "".join(self.lines)


def env_for(data_dir: Path, **extra: str) -> dict[str, str]:
    # Not under make, even when `make test` runs this (the quickstart names `make run` to
    # continue only when make started it).
    make = {"MAKELEVEL", "MAKEFLAGS", "MFLAGS"}
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASTEBUD_") and k not in make}
    env.update({"TASTEBUD_DATA_DIR": str(data_dir), **extra})
    return env


def quickstart(data_dir: Path, *args: str, port: int | None = None, **extra: str) -> Run:
    """``tastebud quickstart`` started as ``make run &`` starts it from a script: with SIGINT
    ignored (a shell without job control does that to background commands; before issue 15
    the quickstart then ignored Ctrl+C and ``kill -INT`` at every stage)."""
    port_args = [] if port is None else ["--port", str(port)]
    cmd = " ".join([sys.executable, "-m", "tastebud.cli", "quickstart", *port_args, *args])
    return Run(["sh", "-c", f"trap '' INT; exec {cmd}"], env_for(data_dir, **extra), cwd=ROOT)


def port_is_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def integrity(data_dir: Path) -> tuple[str, int]:
    """``PRAGMA integrity_check`` and the number of stored events."""
    with sqlite3.connect(data_dir / "tastebud.db") as db:
        check = db.execute("PRAGMA integrity_check").fetchone()[0]
        events = db.execute("SELECT count(*) FROM events").fetchone()[0]
    return str(check), int(events)


@pytest.mark.slow
@pytest.mark.parametrize("stage", list(STAGES))
def test_sigint_stops_the_quickstart_at_every_stage(stage: str, tmp_path: Path) -> None:
    data, port = tmp_path / "data", free_port()
    run = quickstart(data, *SMALL, port=port)
    run.wait_for(STAGES[stage])
    run.proc.send_signal(signal.SIGINT)  # as `kill -INT PID`; a terminal signals the group
    output = run.finish(limit=5)
    assert run.proc.returncode == 130, output
    # How to continue: this very command, and where the keys and data are.
    assert f"quickstart --port {port} --users 150 --days 12` {STOPPED} {data}" in output, output
    if stage in AFTER:
        assert AFTER[stage] not in output, f"not stopped during {stage}:\n{output}"
    check, events = integrity(data)
    assert check == "ok"
    if stage != "sending":
        assert events > 5000  # every acknowledged event is kept
    assert port_is_free(port), "the API server process outlived the quickstart"


@pytest.mark.slow
def test_make_run_port_and_ctrl_c(tmp_path: Path) -> None:
    """README: `TASTEBUD_PORT=8080 make run` serves there, and Ctrl+C (SIGINT to the
    terminal's foreground process group: make and the quickstart) stops it and names
    `make run` to continue. ``-o`` keeps make from reinstalling the environment."""
    data, port = tmp_path / "data", free_port()
    make = ["make", "-s", "-o", ".venv/.installed", "run"]
    run = Run(make, env_for(data, TASTEBUD_PORT=str(port)), cwd=ROOT, start_new_session=True)
    run.wait_for(STAGES["sending"])
    assert f"serving http://127.0.0.1:{port} " in "".join(run.lines)
    os.killpg(run.proc.pid, signal.SIGINT)
    output = run.finish(limit=5)
    assert "stopped; run `make run` again to continue" in output, output
    assert integrity(data)[0] == "ok" and port_is_free(port)


@pytest.mark.slow
def test_running_again_continues_and_reuses_keys(tmp_path: Path) -> None:
    from tastebud.config import Settings
    from tastebud.evaluation.data import user_attributes
    from tastebud.services import build_services

    data, port = tmp_path / "data", free_port()
    first = quickstart(data, *SMALL, "--no-serve", TASTEBUD_PORT=str(port))
    first.wait_for(STAGES["sending"])
    first.proc.send_signal(signal.SIGINT)
    first.finish(limit=5)
    state_file = data / "quickstart.json"
    assert stat.S_IMODE(state_file.stat().st_mode) == 0o600  # it holds API keys
    keys = json.loads(state_file.read_text())["keys"]
    assert set(keys) == {"ingest", "serve", "admin"}

    # Run again: the port from TASTEBUD_PORT, the same keys, the traffic sent, models trained.
    second = quickstart(data, *SMALL, "--no-serve", TASTEBUD_PORT=str(port))
    out2 = second.finish(limit=300)
    assert second.proc.returncode == 0, out2
    assert f"serving http://127.0.0.1:{port} " in out2
    assert "API keys (the same as last time;" in out2
    assert all(f"  {scope:<6} {key}\n" in out2 for scope, key in keys.items())
    assert "simulated NetworkBuster traffic:" in out2 and "0 rejected" in out2
    services = build_services(Settings(data_dir=data), migrate=False)
    try:
        versions = [(v.name, v.version) for v in services.registry.versions()]
        assert ("recommendations", 1) in versions
        # The users' attributes were sent: the bias analysis has groups to compare.
        attributes = user_attributes(services.store)
        assert attributes.height == 150
        assert {"segment", "age_bucket", "skill_level", "locale"} <= set(attributes.columns)
        events = services.store.count_events()
        services.keys.revoke(keys["serve"].split("_")[2])  # an operator revokes one key
    finally:
        services.close()

    # Again, nothing changed: nothing sent, no identical version; the revoked key is replaced
    # and never printed again.
    third = quickstart(data, *SMALL, "--no-serve", port=free_port())
    out3 = third.finish(limit=300)
    assert third.proc.returncode == 0, out3
    assert "already sent" in out3 and "not sent again" in out3
    assert "nothing trained, no version registered" in out3
    assert "(unchanged: same data and configuration)" in out3
    assert keys["serve"] not in out3 and "API keys (new for serve;" in out3
    assert keys["ingest"] in out3 and keys["admin"] in out3
    services = build_services(Settings(data_dir=data), migrate=False)
    try:
        assert [(v.name, v.version) for v in services.registry.versions()] == versions
        assert services.store.count_events() == events
    finally:
        services.close()
    # The hints work as printed (after `make run`, `tastebud` is not on PATH).
    hint = next(
        line
        for line in out3.splitlines()
        if line.endswith("# versions, aliases and held-out metrics")
    )
    listed = subprocess.run(
        hint.split("#")[0], shell=True, cwd=ROOT, env=env_for(data), capture_output=True, text=True
    )
    assert listed.returncode == 0 and "recommendations" in listed.stdout, hint


def test_a_port_in_use_is_named_with_how_to_choose_another(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        run = quickstart(tmp_path / "data", *SMALL, port=port)
        output = run.finish(limit=120)
    assert run.proc.returncode == 2, output
    assert f"cannot serve on http://127.0.0.1:{port}" in output
    assert "TASTEBUD_PORT=8080 make run" in output


@pytest.mark.slow
@pytest.mark.browser
def test_make_run_allows_its_own_demo_page(tmp_path: Path, browser: Any) -> None:
    """Issue 15, point 2: `make run` serves a page from another origin that sends events to the
    API through CORS (its origin only), with the ingest key; resending answers duplicate."""
    data, port = tmp_path / "data", free_port()
    run = quickstart(data, *SMALL, port=port)
    run.wait_for(STAGES["serving"], limit=300)
    line = next(x for x in run.lines if "sends events from the browser" in x)
    demo = line.split(": ", 1)[1].strip()
    assert demo == f"http://127.0.0.1:{port + 1}/"
    try:
        page = browser.new_page()
        page.goto(demo)
        page.click("#view")
        page.wait_for_selector("#log li.accepted", timeout=10000)
        page.click("#again")
        page.wait_for_selector("#log li.duplicate", timeout=10000)
        entries = page.locator("#log li").all_inner_texts()
        assert entries[0].startswith("200 page_view") and entries[1].startswith("202 page_view")
        page.close()
    finally:
        run.proc.send_signal(signal.SIGINT)
        run.finish(limit=5)
    from tastebud.config import Settings
    from tastebud.services import build_services

    services = build_services(Settings(data_dir=data), migrate=False)
    try:
        key = services.pseudonymizer.user("demo-visitor")
        assert services.store.count_events(user_key=key) == 1  # sent twice, stored once
    finally:
        services.close()


def test_the_state_file_reads_back_and_skips_what_is_malformed(tmp_path: Path) -> None:
    from tastebud.cli._quickstart_state import State, load_state, save_state

    path = tmp_path / "data" / "quickstart.json"
    assert load_state(path) == {}  # no file yet
    state: State = {
        "keys": {"ingest": "tb_i_1", "serve": "tb_s_2", "admin": "tb_a_3"},
        "sent": {"config": {"users": 150, "days": 12, "seed": 0}, "on": "2026-12-07", "events": 7},
    }
    save_state(path, state)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_state(path) == state
    # A hand-edited file: a key that is not a string and traffic without settings are left out.
    path.write_text(json.dumps({"keys": {"ingest": 5, "serve": "tb_s_2"}, "sent": {"on": "x"}}))
    assert load_state(path) == {"keys": {"serve": "tb_s_2"}}
    path.write_text("[1, 2]")
    assert load_state(path) == {}


@pytest.mark.slow
def test_make_run_starts_a_demo_experiment(tmp_path: Path) -> None:
    """Issue 17: `make run` starts a demo experiment on the simulated traffic and prints the
    command that shows its results; the command works as printed."""
    data, port = tmp_path / "data", free_port()
    # Enough users for the governance checklist's group comparison: a version is promoted.
    run = quickstart(data, "--users", "400", "--days", "14", port=port)
    try:
        run.wait_for(STAGES["serving"], limit=300)
    finally:
        run.proc.send_signal(signal.SIGINT)
        output = run.finish(limit=10)
    started = next(x for x in run.lines if x.startswith("demo experiment demo-exploration"))
    assert "simulated users got a list and sent" in started, output
    command = next(x for x in run.lines if x.startswith("see its results: "))
    command = command.removeprefix("see its results: ").strip()
    assert command.endswith("experiments results demo-exploration")
    shown = subprocess.run(
        command, shell=True, cwd=ROOT, env=env_for(data), capture_output=True, text=True
    )
    assert shown.returncode == 0, shown.stderr
    first = shown.stdout.splitlines()[0]
    assert first.startswith("demo-exploration (ab, running"), shown.stdout
    assert "users: control " in shown.stdout and "explore " in shown.stdout
    assert "primary ctr:" in shown.stdout and "SRM: p = " in shown.stdout
