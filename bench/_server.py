"""What the HTTP benchmarks share: a clean environment, a real ``tastebud serve`` started on a
free port and waited for, and the CPU its processes use (from /proc)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def clean_env(**settings: str) -> dict[str, str]:
    """This process's environment without any ``TASTEBUD_*`` variable, plus ``settings``
    (so that the developer's own configuration never leaks into a measurement)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASTEBUD_")}
    env.update(settings)
    return env


def start_server(
    env: dict[str, str], workers: int, log: Path, timeout_s: float = 180.0
) -> tuple[subprocess.Popen[bytes], str]:
    """Start ``tastebud serve`` with ``workers`` API processes and wait until ``/readyz``
    answers 200. Returns (the process, its base URL). The server's output goes to ``log``,
    whose tail is the error if it does not come up (the server is stopped then)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with log.open("wb") as out:  # the child keeps its own descriptor
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tastebud.cli",
                "serve",
                "--port",
                str(port),
                "--workers",
                str(workers),
            ],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            try:
                if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                    return server, url
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                raise SystemExit("server did not start: " + log.read_text()[-2000:])
            time.sleep(0.1)
    except BaseException:
        server.terminate()
        server.wait(30)
        raise


def cpu_by_process(pid: int) -> dict[int, tuple[float, float]]:
    """User and system CPU seconds of a process and of each of its live direct children."""
    tick = os.sysconf("SC_CLK_TCK")
    out: dict[int, tuple[float, float]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(entry) == pid or int(fields[1]) == pid:  # fields[1] is the parent pid
            out[int(entry)] = (int(fields[11]) / tick, int(fields[12]) / tick)
    return out
