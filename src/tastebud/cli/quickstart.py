"""``tastebud quickstart``: what ``make run`` runs.

The API runs as a child process (``tastebud serve``) while this process creates the keys,
sends the simulated traffic over HTTP and trains: two processes use both cores, and training
(which reads the SQLite file through ADBC's own copy of SQLite, see ``pipeline/load.py``) never
shares a process with the server's connections, whose file locks that would silently drop.

Running it again continues where it stopped: the API keys are kept in
``<data dir>/quickstart.json`` (mode 0600) and printed again while they are valid (a revoked
one is replaced, never printed), traffic already sent is not sent again, and models whose data
and configuration did not change are not trained again (``training/jobs.py``). The state
file is read and written by ``cli/_quickstart_state.py``. Ctrl+C (SIGINT)
or SIGTERM stops it at any stage within seconds (``cli/_stop.py``) and says how to continue.
"""

from __future__ import annotations

import json
import os
import shlex
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from tastebud import __version__
from tastebud.cli import (
    DataDirOpt,
    _progress,
    _send,
    _services,
    _settings,
    _start_date,
    activation_note,
    app,
    err,
    hint,
    out,
    prog,
)
from tastebud.cli._quickstart_state import STATE_FILE, load_state, save_state, state_keys
from tastebud.cli._stop import Stopper
from tastebud.errors import ConfigError

if TYPE_CHECKING:
    from tastebud.config import Settings
    from tastebud.services import Services
    from tastebud.simulator import Simulator

__all__ = ["quickstart"]


# -- the API server, a child process ------------------------------------------------------------
def _check_port(host: str, port: int, url: str) -> None:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise ConfigError(
                f"cannot serve on {url}: {exc.strerror or exc} (another server on that port? "
                "choose another with TASTEBUD_PORT=8080 make run, or --port)"
            ) from None


def _start_server(
    settings: Settings,
    host: str,
    port: int,
    url: str,
    stopper: Stopper,
    cors: list[str] | None = None,
) -> subprocess.Popen[bytes]:
    """``tastebud serve`` on the same settings, started and ready (``/readyz`` answers);
    ``cors`` origins are added to the configured ones (the demo page's)."""
    import httpx

    _check_port(host, port, url)
    env = {
        **os.environ,
        "TASTEBUD_DATA_DIR": str(settings.data_dir.absolute()),
        "TASTEBUD_LOG_LEVEL": settings.log_level,
    }
    if cors:
        env["TASTEBUD_CORS_ORIGINS"] = json.dumps([*settings.cors_origins, *cors])
    cmd = [sys.executable, "-m", "tastebud.cli", "serve", "--host", host, "--port", str(port)]
    child = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL)
    stopper.children.append(child)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if child.poll() is not None:
            raise ConfigError(f"the server could not start on {url} (see its message above)")
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return child
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise ConfigError(f"the server did not become ready on {url} within 2 minutes")


def _stop_server(child: subprocess.Popen[bytes] | None, wait: float = 2.5) -> None:
    """Ask the server to stop (it finishes the requests in flight), kill it after ``wait``."""
    if child is None or child.poll() is not None:
        return
    child.terminate()
    try:
        child.wait(wait)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()


def _await_models(url: str, key: str, services: Services, limit: float = 15.0) -> None:
    """Wait (at most ``limit`` s) until the server serves every production version: it polls
    the registry every TASTEBUD_MODEL_POLL_SECONDS, and the examples printed next use them."""
    import httpx

    want = {
        mv.name: mv.version for mv in services.registry.versions() if "production" in mv.aliases
    }
    deadline = time.monotonic() + limit
    while want and time.monotonic() < deadline:
        try:
            body = httpx.get(
                f"{url}/v1/models", timeout=5, headers={"Authorization": f"Bearer {key}"}
            ).json()
            served = {m["name"]: m.get("serving") for m in body.get("models", [])}
        except (httpx.HTTPError, ValueError):
            served = {}
        if all(served.get(name) == version for name, version in want.items()):
            return
        time.sleep(0.3)


# -- training -------------------------------------------------------------------------------------
def _first_models(services: Services) -> None:
    """Train on the simulated traffic (with progress) and promote what passes its checklist:
    the quickstart operator's approval is recorded as ``quickstart``. Models whose data and
    configuration did not change since their latest version are not trained again."""
    from tastebud.cli.train import eval_progress
    from tastebud.errors import InvalidInput
    from tastebud.registry import checklist, promote
    from tastebud.training.jobs import train_full

    out.print("training the first models (features, recommender, predictors)...")
    with _progress() as progress:
        stage = progress.add_task("features", total=None)

        def log(message: str) -> None:
            progress.update(stage, description=message.strip()[:70])
            progress.console.print(
                f"  {message.strip()}", style="dim", highlight=False, markup=False, soft_wrap=True
            )

        from tastebud.worker import job_context

        ctx = job_context(services, "quickstart", log=log)
        ctx.progress = eval_progress(progress)
        try:
            result = train_full(ctx, splits=2)
        except InvalidInput as exc:
            out.print(
                hint(
                    f"  not enough traffic to train on yet ({exc}); run `tastebud train "
                    "--full` when more has arrived"
                )
            )
            return
        progress.update(stage, description="trained", total=1, completed=1)
    for target, why in result.skipped.items():
        out.print(f"  skipped {target}: {why}")
    policy = services.settings.governance
    for mv in [*result.registered, *result.unchanged]:
        unchanged = " (unchanged: same data and configuration)" if mv in result.unchanged else ""
        metric = "ndcg@10" if mv.kind == "recommender" else "roc_auc"
        headline = f"held-out {metric} {mv.metrics['test'].get(metric) or 0:.4f}"
        if "production" in mv.aliases:
            out.print(
                f"  {mv.name} v{mv.version} ({mv.algorithm}) in production: {headline}{unchanged}"
            )
            continue
        # Approval is the quickstart's to give; a failing item, or one that could not be
        # checked (production would need a recorded waiver), is the operator's decision.
        check = checklist(services.registry, mv, policy)
        held = [i for i in [*check.failing(), *check.not_checked()] if i.name != "approval"]
        if held:
            out.print(
                hint(
                    f"  {mv.name} v{mv.version} stays a candidate{unchanged}: "
                    + "; ".join(f"{i.name} {i.status.replace('_', ' ')} ({i.detail})" for i in held)
                )
            )
            continue
        services.registry.approve(mv.name, mv.version, actor="quickstart")
        promote(services.registry, policy, mv.name, mv.version, actor="quickstart")
        out.print(
            f"  {mv.name} v{mv.version} ({mv.algorithm}) in production: {headline}{unchanged}"
        )
    out.print(f"trained in {result.seconds:.0f} s")


# -- the command ----------------------------------------------------------------------------------
def _where(path: Path) -> str:
    """``path`` as a user reads it here: ``./relative`` below the current directory."""
    relative = os.path.relpath(path.absolute())
    return str(path.absolute()) if relative.startswith("..") else f"./{relative}"


def _again(data_dir: Path) -> str:
    """How to continue after a stop: ``make run`` under make, else this command."""
    if "MAKELEVEL" in os.environ:
        how = "make run"
    else:
        how = " ".join([prog(), "quickstart", *(shlex.quote(a) for a in sys.argv[2:])])
    return f"stopped; run `{how}` again to continue: keys and data are kept in {_where(data_dir)}"


@app.command("quickstart")
def quickstart(
    no_serve: Annotated[bool, typer.Option("--no-serve", help="Stop after the summary.")] = False,
    users: Annotated[int, typer.Option(min=1, help="Simulated users to send.")] = 1000,
    days: Annotated[
        int,
        typer.Option(
            min=1,
            help="Days of simulated traffic, ending today. The churn predictor needs more "
            "than 51 (30 days of outcome after each of four weekly as-of times), conversion "
            "more than 28; with fewer only the recommender is trained.",
        ),
    ] = 60,
    host: Annotated[str | None, typer.Option(help="Bind address ($TASTEBUD_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port ($TASTEBUD_PORT, default 8000).")] = None,
    data_dir: DataDirOpt = None,
) -> None:
    """The main job of `make run`: start the embedded server, simulate a small NetworkBuster
    (1,000 users over 60 days, with their attributes), send its catalogue, users and traffic
    through the HTTP API, train and promote the first models, print the API keys, and keep
    serving. Run it again to continue: keys and data are kept in the data directory, and
    nothing already done is done again. Ctrl+C stops it at any stage."""
    settings = _settings(data_dir)
    if settings.log_level == "INFO":  # a request log line per batch would bury the summary
        settings = settings.model_copy(update={"log_level": "WARNING"})
    message = _again(settings.data_dir)
    with Stopper(farewell=message) as stopper:
        services: Services | None = None
        try:
            services = _services(settings, migrate=True)
            _run(services, settings, host, port, no_serve, users, days, stopper)
        except KeyboardInterrupt:
            pass
        finally:
            _clean_up(stopper.children, services)
        if stopper.signum is not None:
            err.print(message, markup=False, highlight=False)
            raise typer.Exit(stopper.exit_code)


def _clean_up(children: list[subprocess.Popen[bytes]], services: Services | None) -> None:
    """Stop the server, then close the database connections; a signal arriving meanwhile does
    not cut this short (a second one ends the process, see :class:`Stopper`)."""
    steps: list[Callable[[], None]] = [partial(_stop_server, c) for c in children]
    if services is not None:
        steps.append(services.close)
    for step in steps:
        try:
            step()
        except KeyboardInterrupt:
            step()


def _run(
    services: Services,
    settings: Settings,
    host: str | None,
    port: int | None,
    no_serve: bool,
    users: int,
    days: int,
    stopper: Stopper,
) -> None:
    """Every stage; the server process is in ``stopper.children`` (stopped by the caller)."""
    from tastebud.simulator import SimConfig, Simulator

    state_path = settings.data_dir / STATE_FILE
    state = load_state(state_path)
    keys, created = state_keys(services, state)
    if created or state.get("keys") != keys:
        state["keys"] = keys
        save_state(state_path, state)
    bind_host, bind_port = host or settings.host, port or settings.port
    url = f"http://{bind_host}:{bind_port}"
    demo = None if no_serve else _demo_server(bind_host, bind_port + 1, url, keys["ingest"])
    cors = [] if demo is None else demo.origins
    child = _start_server(settings, bind_host, bind_port, url, stopper, cors)
    out.print(
        f"Tastebud {__version__} serving {url} (docs: {url}/docs) on "
        f"{settings.resolved_database_url()}"
    )
    sim_config = {"users": users, "days": days, "seed": 0}
    sim = Simulator(
        SimConfig(
            users=users, items=max(200, users), days=days, seed=0, start=_start_date("recent", days)
        )
    )
    sent = state.get("sent")
    if (
        sent is not None
        and sent["config"] == sim_config
        and services.store.count_events() >= sent["events"]
    ):
        out.print(
            f"simulated NetworkBuster traffic: already sent on {sent['on']} "
            f"({sent['events']:,} events, {users:,} users, {days} days); not sent "
            "again"
        )
    else:
        out.print(f"sending the simulated catalogue, users and traffic to {url}...")
        summary = _send(sim, url, keys["admin"])
        out.print(
            f"simulated NetworkBuster traffic: {summary.accepted:,} events accepted, "
            f"{summary.duplicates:,} duplicates, {summary.rejected:,} rejected "
            f"({users:,} users, {days} days)"
        )
        state["sent"] = {
            "config": sim_config,
            "on": datetime.now(UTC).date().isoformat(),
            "events": services.store.count_events(),
        }
        save_state(state_path, state)
    _first_models(services)
    _await_models(url, keys["serve"], services)
    if not no_serve:  # a demo to watch while serving
        _demo(url, keys, sim)
    _print_keys(keys, created, settings.data_dir / STATE_FILE)
    _print_examples(url, keys)
    if no_serve:
        return
    if demo is not None:
        out.print(
            f"A web page that sends events from the browser (CORS allows its origin): {demo.url}"
        )
    out.print("serving; press Ctrl+C to stop")
    while child.poll() is None:
        time.sleep(0.5)
    raise ConfigError(f"the server on {url} stopped (exit code {child.returncode})")


def _demo(url: str, keys: dict[str, str], sim: Simulator) -> None:
    """Start the demo experiment (docs/experiments.md) once, and say how to see it."""
    from tastebud.cli._demo_experiment import DEMO_EXPERIMENT, demo_experiment

    run = demo_experiment(url, keys, sim)
    if not run.ready:
        out.print(
            f"no demo experiment yet: it starts once a recommendations version is in "
            f"production ({prog()} models list)"
        )
        return
    if run.created:
        out.print(
            f"demo experiment {DEMO_EXPERIMENT} started (control against a larger exploration "
            f"share): {run.lists} simulated users got a list and sent {run.clicks} clicks"
        )
    else:
        out.print(f"demo experiment {DEMO_EXPERIMENT}: already started earlier")
    out.print(f"see its results: {prog()} experiments results {DEMO_EXPERIMENT}")


class _Demo:
    """The demo page's server: a daemon thread serving one page on another port than the API
    (it ends with the process)."""

    def __init__(self, server: ThreadingHTTPServer, host: str, port: int) -> None:
        self.server = server
        self.url = f"http://{host}:{port}/"
        names = [host, "localhost"] if host == "127.0.0.1" else [host]
        self.origins = [f"http://{name}:{port}" for name in names]
        threading.Thread(target=server.serve_forever, name="demo-page", daemon=True).start()


def _demo_server(host: str, port: int, api_url: str, ingest_key: str) -> _Demo | None:
    """Serve the demo page (``tastebud.web``) on ``port``, or nothing if it is taken."""
    from tastebud.web import demo_page

    page = demo_page(api_url, ingest_key)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            if self.path not in ("/", "/index.html"):
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(page)

        def log_message(self, *args: Any) -> None:  # quiet: the console shows the summary
            pass

    try:
        server = ThreadingHTTPServer((host, port), Handler)
    except OSError:
        out.print(hint(f"(port {port} is taken: no demo page this time)"))
        return None
    return _Demo(server, host, port)


def _print_keys(keys: dict[str, str], created: list[str], path: Path) -> None:
    fresh = (
        "new"
        if len(created) == len(keys)
        else ("the same as last time" if not created else f"new for {', '.join(created)}")
    )
    out.print(
        hint(
            f"API keys ({fresh}; stored in {_where(path)}, readable by you only; "
            "`tastebud keys list` shows their ids):"
        )
    )
    for scope, key in keys.items():
        out.print(f"  {scope:<6} {key}")


def _print_examples(url: str, keys: dict[str, str]) -> None:
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    serve = f"-H 'Authorization: Bearer {keys['serve']}'"
    json_body = "-H 'Content-Type: application/json'"
    user = f"{url}/v1/users/nb-user-0000042"
    out.print("Try:")
    out.print(
        f"  curl -s -X POST {url}/v1/events -H 'Authorization: Bearer {keys['ingest']}' "
        f"{json_body} "
        '-d \'{"event_type": "page_view", "user_id": "u1", '
        f'"timestamp": "{now}", "data": {{"url": "/pricing"}}}}\''
    )
    out.print(f"  curl -s {url}/v1/items/nb-item-000042 {serve}")
    out.print(f"  curl -s {user}/profile {serve}")
    out.print(f"  curl -s '{user}/recommendations?k=5&device=mobile&hour=20' {serve}")
    out.print(f"  curl -s '{url}/v1/items/nb-item-000042/similar?k=5' {serve}")
    out.print(
        f"  curl -s -X POST {user}/rank {serve} {json_body} "
        '-d \'{"items": [{"id": "nb-item-000042", "variants": {"beginner": "Easy", '
        '"expert": "Deep"}}, {"id": "new-post", "category": "wifi", '
        f'"created_at": "{now}"}}]}}\''
    )
    out.print(
        f"  curl -s -X POST {user}/feedback {serve} {json_body} "
        '-d \'{"item_id": "nb-item-000042", "kind": "not_interested"}\''
    )
    out.print(f"  curl -s {user}/predictions {serve}")
    out.print(f"  curl -s {url}/v1/models {serve}")
    name = prog()
    out.print(f"  {name} models list      # versions, aliases and held-out metrics")
    out.print(f"  {name} worker           # the schedule: daily incremental, weekly full")
    note = activation_note()
    if note is not None:
        out.print(f"  {note}")
