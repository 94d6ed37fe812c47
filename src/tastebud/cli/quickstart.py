"""``tastebud quickstart``: what ``make run`` runs."""

from __future__ import annotations

import time
from typing import Annotated

import typer

from tastebud import __version__
from tastebud.apikeys import SCOPES
from tastebud.cli import DataDirOpt, _send, _services, _settings, _start_date, app, out
from tastebud.errors import ConfigError, InvalidInput
from tastebud.services import Services

__all__ = ["quickstart"]


def _first_models(services: Services) -> None:
    """Train on the simulated traffic and promote what passes its checklist: the quickstart
    operator's approval is recorded as ``quickstart``."""
    from tastebud.registry import checklist, promote
    from tastebud.training.jobs import train_full

    out.print("training the first models (features, recommender, predictors)...")
    ctx = services.job_context("quickstart")
    try:
        result = train_full(ctx, splits=2)
    except InvalidInput as exc:
        out.print(f"  not enough traffic to train on yet ({exc}); run `tastebud train --full` "
                  "when more has arrived")  # fmt: skip
        return
    for target, why in result.skipped.items():
        out.print(f"  skipped {target}: {why}")
    policy = services.settings.governance
    for mv in result.registered:
        failing = [i for i in checklist(services.registry, mv, policy).failing()
                   if i.name != "approval"]  # fmt: skip
        if failing:
            out.print(f"  {mv.name} v{mv.version} stays a candidate: "
                      + "; ".join(f"{i.name} ({i.detail})" for i in failing))  # fmt: skip
            continue
        services.registry.approve(mv.name, mv.version, actor="quickstart")
        promote(services.registry, policy, mv.name, mv.version, actor="quickstart")
        headline = mv.metrics["test"].get("ndcg@10") or mv.metrics["test"].get("roc_auc")
        metric = "ndcg@10" if mv.kind == "recommender" else "roc_auc"
        out.print(f"  {mv.name} v{mv.version} ({mv.algorithm}) in production: held-out "
                  f"{metric} {headline:.4f}")  # fmt: skip
    services.models.refresh()
    out.print(f"trained in {result.seconds:.0f} s")


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
    host: Annotated[str | None, typer.Option(help="Bind address.")] = None,
    port: Annotated[int | None, typer.Option(help="Port.")] = None,
    data_dir: DataDirOpt = None,
) -> None:
    """The main job of `make run`: start the embedded server, simulate a small NetworkBuster
    (1,000 users over 60 days), send its catalogue and traffic through the HTTP API, print what was
    accepted and the API keys, and keep serving."""
    import threading

    import uvicorn

    from tastebud.api import create_app
    from tastebud.simulator import SimConfig, Simulator

    settings = _settings(data_dir)
    if settings.log_level == "INFO":  # a request log line per batch would bury the summary
        settings = settings.model_copy(update={"log_level": "WARNING"})
    services = _services(settings, migrate=True)
    created = {scope: services.keys.create(f"quickstart-{scope}", scope)[1] for scope in SCOPES}
    bind_host, bind_port = host or settings.host, port or settings.port
    url = f"http://{bind_host}:{bind_port}"
    server = uvicorn.Server(uvicorn.Config(
        create_app(settings, services=services), host=bind_host, port=bind_port,
        access_log=False, log_level="warning",
    ))  # fmt: skip
    thread = threading.Thread(target=server.run, name="tastebud-api", daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            raise ConfigError(f"the server could not start on {url} (is the port in use?)")
        time.sleep(0.05)
    out.print(
        f"Tastebud {__version__} serving {url} (docs: {url}/docs) on "
        f"{settings.resolved_database_url()}"
    )
    sim = Simulator(
        SimConfig(
            users=users, items=max(200, users), days=days, seed=0, start=_start_date("recent", days)
        )
    )
    summary = _send(sim, url, created["admin"])
    out.print(
        f"simulated NetworkBuster traffic: {summary.accepted:,} events accepted, "
        f"{summary.duplicates:,} duplicates, {summary.rejected:,} rejected "
        f"({users:,} users, {days} days)"
    )
    _first_models(services)
    out.print("API keys (shown once; 'tastebud keys list' shows their ids):")
    for scope, key in created.items():
        out.print(f"  {scope:<6} {key}")
    from datetime import UTC, datetime

    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    out.print("Try:")
    out.print(
        f"  curl -s -X POST {url}/v1/events -H 'Authorization: Bearer {created['ingest']}' "
        "-H 'Content-Type: application/json' "
        '-d \'{"event_type": "page_view", "user_id": "u1", '
        f'"timestamp": "{now}", "data": {{"url": "/pricing"}}}}\''
    )
    out.print(
        f"  curl -s {url}/v1/items/nb-item-000042 -H 'Authorization: Bearer {created['serve']}'"
    )
    out.print(
        f"  curl -s {url}/v1/users/nb-user-0000042/profile "
        f"-H 'Authorization: Bearer {created['serve']}'"
    )
    serve = f"-H 'Authorization: Bearer {created['serve']}'"
    json_body = "-H 'Content-Type: application/json'"
    out.print(
        f"  curl -s '{url}/v1/users/nb-user-0000042/recommendations?k=5&device=mobile&hour=20' "
        f"{serve}"
    )
    out.print(f"  curl -s '{url}/v1/items/nb-item-000042/similar?k=5' {serve}")
    out.print(
        f"  curl -s -X POST {url}/v1/users/nb-user-0000042/rank {serve} {json_body} "
        '-d \'{"items": [{"id": "nb-item-000042", "variants": {"beginner": "Easy", '
        '"expert": "Deep"}}, {"id": "new-post", "category": "wifi", '
        f'"created_at": "{now}"}}]}}\''
    )
    out.print(
        f"  curl -s -X POST {url}/v1/users/nb-user-0000042/feedback {serve} {json_body} "
        '-d \'{"item_id": "nb-item-000042", "kind": "not_interested"}\''
    )
    out.print(f"  curl -s {url}/v1/users/nb-user-0000042/predictions {serve}")
    out.print(f"  curl -s {url}/v1/models -H 'Authorization: Bearer {created['serve']}'")
    out.print("  tastebud models list      # versions, aliases and held-out metrics")
    out.print("  tastebud worker           # the schedule: daily incremental, weekly full")
    if no_serve:
        server.should_exit = True
        thread.join()
        services.close()
        return
    out.print("serving; press Ctrl+C to stop")
    try:
        while thread.is_alive():
            thread.join(0.5)
    except KeyboardInterrupt:
        server.should_exit = True
        thread.join()
    services.close()
