"""``tastebud worker``: the seed's training schedule, guarded by database locks.

Jobs: ``retention`` (daily: deletes events past their type's retention period), ``incremental``
(daily), ``full`` (weekly), ``feature_review`` (monthly), ``bakeoff`` (quarterly) and
``experiments`` (hourly: analyses every running experiment and keeps the results); intervals
in :class:`tastebud.config.Schedule`. A job runs only while its worker
holds the job's lease in ``job_locks`` (renewed by a heartbeat), so two workers never run the
same job; every run is recorded in ``job_runs``. A failed run is retried after
``retry_seconds`` until ``max_attempts``; a crashed one (its lease expired while ``running``)
is marked ``crashed``, its partial artifacts are swept, and it is retried the same way.
After a training job the auto-promotion policy decides, per registered candidate.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict

from pydantic import JsonValue
from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from tastebud.config import Schedule, Settings
from tastebud.errors import ModelNotFound
from tastebud.events.retention import apply_retention
from tastebud.monitoring import get_logger
from tastebud.registry import ModelVersion, checklist, promote
from tastebud.store import tables as t
from tastebud.training.context import JobContext
from tastebud.training.jobs import train_full
from tastebud.training.recommender_jobs import train_incremental

__all__ = [
    "ExperimentsDetails",
    "FullDetails",
    "IncrementalDetails",
    "JOBS",
    "JobDetails",
    "JobLock",
    "JobRun",
    "ReportDetails",
    "RetentionDetails",
    "Worker",
    "auto_promote",
]

_log = get_logger(__name__)
JOBS = ("retention", "full", "incremental", "feature_review", "bakeoff", "experiments")
"""Scheduled jobs, in the order a worker considers them (retention first: training never sees
events past their retention period)."""


class FullDetails(TypedDict):
    """What a ``full`` run records in ``job_runs.details``."""

    registered: list[str]
    """``name vN`` of each registered candidate."""
    skipped: dict[str, str]
    """Why each skipped target was skipped."""
    seconds: float
    promotion: list[str]
    """What the auto-promotion policy did, per candidate."""


class IncrementalDetails(TypedDict, total=False):
    """What an ``incremental`` run records: ``skipped`` alone, or the other keys."""

    skipped: str
    registered: str
    changed_users: int
    seconds: float
    promotion: list[str]


class ReportDetails(TypedDict):
    """What ``feature_review`` and ``bakeoff`` record: the report's path."""

    report: str


class RetentionDetails(TypedDict):
    """What a ``retention`` run records: events deleted per type, and in all."""

    deleted: dict[str, int]
    total: int


class ExperimentsDetails(TypedDict):
    """What an ``experiments`` run records: per running experiment, its decision."""

    analysed: dict[str, str]


JobDetails = (
    FullDetails | IncrementalDetails | ReportDetails | RetentionDetails | ExperimentsDetails
)
"""What a job returns, recorded as JSON in ``job_runs.details``."""


def _now_ms() -> int:
    return int(time.time() * 1000)


class JobLock:
    """A lease per job name in ``job_locks``: taken if free or expired, renewed while the job
    runs, released at the end. Works the same on SQLite and PostgreSQL."""

    def __init__(self, ctx: JobContext, name: str, owner: str, lease_ms: int) -> None:
        self.engine = ctx.store.engine
        self.name, self.owner, self.lease_ms = name, owner, lease_ms

    def acquire(self) -> bool:
        """Take the lease; ``False`` if another owner holds an unexpired one."""
        now = _now_ms()
        lock = t.job_locks
        with self.engine.begin() as conn:
            taken = conn.execute(
                update(lock)
                .where(lock.c.name == self.name)
                .where((lock.c.expires_ms < now) | (lock.c.owner == self.owner))
                .values(owner=self.owner, acquired_ms=now, expires_ms=now + self.lease_ms)
            ).rowcount
        if taken:
            return True
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    insert(lock).values(
                        name=self.name,
                        owner=self.owner,
                        acquired_ms=now,
                        expires_ms=now + self.lease_ms,
                    )
                )
        except IntegrityError:
            return False
        return True

    def renew(self) -> bool:
        """Extend the lease; ``False`` if it was lost (expired and taken by another worker)."""
        lock = t.job_locks
        with self.engine.begin() as conn:
            return bool(
                conn.execute(
                    update(lock)
                    .where(lock.c.name == self.name, lock.c.owner == self.owner)
                    .values(expires_ms=_now_ms() + self.lease_ms)
                ).rowcount
            )

    def release(self) -> None:
        """Give the lease up (expire it now)."""
        lock = t.job_locks
        with self.engine.begin() as conn:
            conn.execute(
                update(lock)
                .where(lock.c.name == self.name, lock.c.owner == self.owner)
                .values(expires_ms=0)
            )


@dataclass
class JobRun:
    """One recorded run of a job."""

    id: int
    job: str
    owner: str
    attempt: int
    status: str
    started_ms: int
    finished_ms: int | None
    error: str | None
    details: dict[str, JsonValue]
    """The run's :data:`JobDetails` as recorded (JSON, read back as stored: rows written by
    older versions may hold other keys)."""


def auto_promote(ctx: JobContext, mv: ModelVersion) -> str:
    """The auto-promotion policy: promote ``mv`` to production when every checklist item but
    approval passes (the policy, enabled by an operator in the settings, is the recorded
    approval) and its headline metric is at least production's minus the tolerance. Returns
    what happened; a held candidate gets the reason in the audit log."""
    policy, reg = ctx.policy, ctx.registry
    if not policy.auto_promote:
        return "auto-promotion disabled"
    metric = "ndcg@10" if mv.kind == "recommender" else "roc_auc"
    ours = (mv.metrics.get("test") or {}).get(metric)
    prod = reg.resolve(mv.name, "production")
    reason = None
    # Items that could not be checked block too: only a person may waive them.
    failing = checklist(reg, mv, policy).blocking(skip=frozenset({"approval"}))
    if failing:
        reason = "checklist does not pass: " + "; ".join(
            f"{i.name} {i.status.replace('_', ' ')} ({i.detail})" for i in failing
        )
    elif prod is not None:
        theirs = (prod.metrics.get("test") or {}).get(metric)
        if ours is None or (theirs is not None and ours < theirs - policy.tolerance):
            reason = (
                f"{metric} {ours} is below production v{prod.version}'s {theirs} minus "
                f"the tolerance {policy.tolerance}"
            )
    if reason is not None:
        reg.set_alias(
            mv.name, "candidate", mv.version, actor=ctx.actor, reason=reason, action="hold"
        )
        return f"{mv.name} v{mv.version} stays a candidate: {reason}"
    reg.approve(
        mv.name, mv.version, actor="policy:auto-promote", note=f"{metric} {ours}; checklist passes"
    )
    promote(reg, policy, mv.name, mv.version, actor=ctx.actor, reason="auto-promotion policy")
    return f"{mv.name} v{mv.version} promoted to production"


class Worker:
    """Runs due jobs under their locks.

    Args:
        ctx: The training context (store, registry, policy).
        schedule: Intervals and retry settings.
        reports_dir: Where the feature review and bake-off reports go.
        owner: This worker's id in the locks (default ``host:pid``).
        jobs: Overrides of the job functions (tests).
        retention_days: Days events are kept per type, ``"*"`` for the others (default:
            ``Settings.retention_days``'s default).
    """

    def __init__(
        self,
        ctx: JobContext,
        schedule: Schedule,
        reports_dir: Path,
        *,
        owner: str | None = None,
        jobs: dict[str, Callable[[JobContext], JobDetails]] | None = None,
        full_splits: int = 5,
        retention_days: dict[str, int] | None = None,
    ) -> None:
        self.ctx, self.schedule, self.reports_dir = ctx, schedule, reports_dir
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}"
        self.full_splits = full_splits
        self.retention_days: dict[str, int] = dict(
            retention_days
            if retention_days is not None
            else Settings.model_fields["retention_days"].get_default(call_default_factory=True)
        )
        self.jobs: dict[str, Callable[[JobContext], JobDetails]] = {
            "retention": self._retention,
            "full": self._full,
            "incremental": self._incremental,
            "feature_review": self._feature_review,
            "bakeoff": self._bakeoff,
            "experiments": self._experiments,
        }
        self.jobs.update(jobs or {})
        self._stop = threading.Event()

    # -- bookkeeping -----------------------------------------------------------------------
    def interval_ms(self, job: str) -> int:
        """How often ``job`` runs."""
        s = self.schedule
        hours = {
            "incremental": s.incremental_hours,
            "full": s.full_days * 24,
            "feature_review": s.feature_review_days * 24,
            "bakeoff": s.bakeoff_days * 24,
            "retention": s.retention_hours,
            "experiments": s.experiments_hours,
        }[job]
        return int(hours * 3_600_000)

    def runs(self, job: str | None = None, limit: int = 50) -> list[JobRun]:
        """Recent runs, newest first."""
        q = select(t.job_runs).order_by(t.job_runs.c.id.desc()).limit(limit)
        if job is not None:
            q = q.where(t.job_runs.c.job == job)
        with self.ctx.store.engine.connect() as conn:
            return [
                JobRun(
                    r.id,
                    r.job,
                    r.owner,
                    r.attempt,
                    r.status,
                    r.started_ms,
                    r.finished_ms,
                    r.error,
                    r.details or {},
                )
                for r in conn.execute(q)
            ]

    def _mark_crashed(self, run: JobRun) -> None:
        with self.ctx.store.engine.begin() as conn:
            conn.execute(
                update(t.job_runs)
                .where(t.job_runs.c.id == run.id)
                .values(
                    status="crashed",
                    finished_ms=_now_ms(),
                    error="the worker stopped while the job ran (lease expired)",
                )
            )

    def _lock_expired(self, job: str) -> bool:
        with self.ctx.store.engine.connect() as conn:
            expires = conn.execute(
                select(t.job_locks.c.expires_ms).where(t.job_locks.c.name == job)
            ).scalar()
        return expires is None or expires < _now_ms()

    def due(self, job: str, now_ms: int | None = None) -> int | None:
        """The attempt number ``job`` is due for now, or ``None`` if it is not due."""
        now = _now_ms() if now_ms is None else now_ms
        history = self.runs(job, limit=self.schedule.max_attempts + 1)
        if not history:
            return 1
        last = history[0]
        if last.status == "running":
            if not self._lock_expired(job):
                return None  # running elsewhere
            self._mark_crashed(last)
            # Its files are at least 2/3 of a lease old (renewals come every third of one).
            self.ctx.registry.sweep(older_than_s=self.schedule.lease_seconds / 2)
            last.status, last.finished_ms = "crashed", now
        if last.status in ("failed", "crashed") and last.attempt < self.schedule.max_attempts:
            retry_at = (last.finished_ms or now) + int(self.schedule.retry_seconds * 1000)
            return last.attempt + 1 if now >= retry_at else None
        # The cycle starts at the first attempt of the latest series.
        first = next((r for r in history if r.attempt == 1), last)
        return 1 if now >= first.started_ms + self.interval_ms(job) else None

    # -- running ---------------------------------------------------------------------------
    def run_job(self, job: str, attempt: int = 1) -> JobRun | None:
        """Run ``job`` now under its lock (``None`` if another worker holds it)."""
        lease_ms = int(self.schedule.lease_seconds * 1000)
        lock = JobLock(self.ctx, job, self.owner, lease_ms)
        if not lock.acquire():
            _log.info("job locked by another worker", job=job)
            return None
        stop = threading.Event()

        def heartbeat() -> None:
            while not stop.wait(self.schedule.lease_seconds / 3):
                if not lock.renew():
                    _log.warning("lost the job lease", job=job)

        beat = threading.Thread(target=heartbeat, name=f"lease-{job}", daemon=True)
        started = _now_ms()
        with self.ctx.store.engine.begin() as conn:
            run_id = conn.execute(
                insert(t.job_runs)
                .values(
                    job=job,
                    owner=self.owner,
                    attempt=attempt,
                    status="running",
                    started_ms=started,
                    details={},
                )
                .returning(t.job_runs.c.id)
            ).scalar_one()
        beat.start()
        status, error = "succeeded", None
        details: JobDetails | None = None
        try:
            details = self.jobs[job](self.ctx)
        except Exception as exc:
            status = "failed"
            error = f"{type(exc).__name__}: {exc}"
            _log.error(
                "job failed",
                job=job,
                attempt=attempt,
                error=error,
                trace=traceback.format_exc(limit=5),
            )
            # The job removed its own staging directory; this catches older leftovers.
            self.ctx.registry.sweep(older_than_s=self.schedule.lease_seconds)
        finally:
            stop.set()
            beat.join()
            with self.ctx.store.engine.begin() as conn:
                conn.execute(
                    update(t.job_runs)
                    .where(t.job_runs.c.id == run_id)
                    .values(
                        status=status,
                        finished_ms=_now_ms(),
                        error=error,
                        details=json.loads(json.dumps(details or {}, default=str)),
                    )
                )
            lock.release()
        _log.info("job finished", job=job, status=status, attempt=attempt)
        return self.runs(job, limit=1)[0]

    def run_due(self, only: str | None = None) -> list[JobRun]:
        """Run every job that is due (or only ``only``, if due)."""
        done = []
        for job in JOBS if only is None else (only,):
            attempt = self.due(job)
            if attempt is not None:
                run = self.run_job(job, attempt)
                if run is not None:
                    done.append(run)
        return done

    def loop(self) -> None:
        """Run due jobs every ``tick_seconds`` until :meth:`stop`."""
        while not self._stop.is_set():
            try:
                self.run_due()
            except Exception:  # the database may be briefly unreachable: try next tick
                _log.error("worker tick failed", exc_info=True)
            self._stop.wait(self.schedule.tick_seconds)

    def stop(self) -> None:
        """Stop :meth:`loop` after the current job."""
        self._stop.set()

    # -- the jobs --------------------------------------------------------------------------
    def _promote_all(self, versions: list[ModelVersion]) -> list[str]:
        return [auto_promote(self.ctx, mv) for mv in versions]

    def _full(self, ctx: JobContext) -> FullDetails:
        result = train_full(ctx, splits=self.full_splits)
        return {
            "registered": [f"{v.name} v{v.version}" for v in result.registered],
            "skipped": result.skipped,
            "seconds": round(result.seconds, 1),
            "promotion": self._promote_all(result.registered),
        }

    def _incremental(self, ctx: JobContext) -> IncrementalDetails:
        try:
            result = train_incremental(ctx)
        except ModelNotFound as exc:
            return {"skipped": str(exc)}
        if result.version is None:
            return {"skipped": f"no new interactions since v{result.base_version}"}
        return {
            "registered": f"{result.version.name} v{result.version.version}",
            "changed_users": result.changed_users,
            "seconds": round(result.seconds, 1),
            "promotion": self._promote_all([result.version]),
        }

    def _feature_review(self, ctx: JobContext) -> ReportDetails:
        from tastebud.worker.reviews import feature_review

        path = feature_review(ctx, self.reports_dir)
        return {"report": str(path)}

    def _retention(self, ctx: JobContext) -> RetentionDetails:
        deleted = apply_retention(ctx.store, self.retention_days, _now_ms())
        return {"deleted": deleted, "total": sum(deleted.values())}

    def _experiments(self, ctx: JobContext) -> ExperimentsDetails:
        from tastebud.experiments import Experiments
        from tastebud.experiments.analysis import results_of

        exps = Experiments(ctx.store, ctx.registry)
        analysed = {}
        for exp in exps.running():
            results = results_of(ctx.store, exp)
            exps.record_results(exp.name, results.model_dump(mode="json"))
            analysed[exp.name] = results.decision.text
        return {"analysed": analysed}

    def _bakeoff(self, ctx: JobContext) -> ReportDetails:
        from tastebud.worker.reviews import bakeoff

        path = bakeoff(ctx, self.reports_dir)
        return {"report": str(path)}
