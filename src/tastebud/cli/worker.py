"""``tastebud worker``: the schedule (retention, incremental, full, feature review, bake-off)."""

from __future__ import annotations

import signal
from typing import Annotated, Any

import typer

from tastebud.cli import DataDirOpt, _services, _settings, app, out
from tastebud.errors import InvalidInput

__all__ = ["worker_cmd"]


@app.command("worker")
def worker_cmd(
    once: Annotated[
        bool, typer.Option("--once", help="Run whatever is due now, then exit.")
    ] = False,
    job: Annotated[
        str | None,
        typer.Option(
            help="Only this job: retention, full, incremental, feature_review or bakeoff."
        ),
    ] = None,
    now: Annotated[
        bool, typer.Option("--now", help="With --job: run it now even if it is not due.")
    ] = False,
    status: Annotated[
        bool, typer.Option("--status", help="Show recent runs and when each job is due.")
    ] = False,
    data_dir: DataDirOpt = None,
) -> None:
    """Run the training schedule: daily retention (TASTEBUD_RETENTION_DAYS) and incremental
    updates, weekly full retraining, a monthly feature review and a quarterly bake-off
    (intervals in TASTEBUD_SCHEDULE). A database lock
    keeps two workers off the same job; failed or crashed jobs are retried; new candidates
    go through the auto-promotion policy (TASTEBUD_GOVERNANCE)."""
    from tastebud.cli.train import cli_actor
    from tastebud.worker.schedule import JOBS, Worker

    if job is not None and job not in JOBS:
        raise InvalidInput(f"unknown job {job!r}; known: {', '.join(JOBS)}")
    if now and job is None:
        raise InvalidInput("--now needs --job NAME")
    settings = _settings(data_dir)
    services = _services(settings)
    from tastebud.worker import job_context

    ctx = job_context(
        services, f"worker:{cli_actor().removeprefix('cli:')}", log=lambda m: out.print(m)
    )
    worker = Worker(
        ctx,
        settings.schedule,
        settings.resolved_artifact_dir() / "reports",
        retention_days=settings.retention_days,
    )
    try:
        if status:
            for name in JOBS:
                runs = worker.runs(name, limit=1)
                last = runs[0] if runs else None
                due = worker.due(name)
                out.print(
                    f"{name:<15} last: "
                    + ("never" if last is None else f"{last.status} (attempt {last.attempt})")
                    + f"; due: {'now' if due else 'later'}"
                )
            return
        if now and job is not None:
            run = worker.run_job(job)
            _report([] if run is None else [run])
            if run is None:
                out.print(f"{job} is running in another worker")
            return
        if once:
            _report(worker.run_due(job))
            return

        def stop(*_: Any) -> None:
            out.print("stopping after the current job")
            worker.stop()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        out.print(
            f"worker {worker.owner}: checking for due jobs every "
            f"{settings.schedule.tick_seconds:g} s"
        )
        worker.loop()
    finally:
        services.close()


def _report(runs: list[Any]) -> None:
    if not runs:
        out.print("nothing due")
    for run in runs:
        out.print(
            f"{run.job}: {run.status} (attempt {run.attempt})"
            + (f": {run.error}" if run.error else "")
        )
        for key, value in run.details.items():
            out.print(f"  {key}: {value}")
