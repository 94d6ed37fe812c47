"""Prometheus metrics, declared once here and labelled by role (STYLE.md rule 15).

Every metric of the service lives in this module; other modules import the objects and record::

    from tastebud.monitoring import CACHE_TOTAL
    from tastebud.monitoring.metrics import FallbackReason, record_fallback

    CACHE_TOTAL.labels(result="hit").inc()
    record_fallback(FallbackReason.COLD_START)

Labels never carry user ids, item ids or raw URL paths: only bounded sets (route templates,
methods, status codes, reasons, model names). A label whose values the code chooses takes them
from one ``StrEnum`` declared here (:class:`FallbackReason`, :class:`UpdateOutcome`), recorded
through a helper, so that the values emitted are the values documented. ``GET /metrics`` serves
:func:`render`.

Multi-process servers (``tastebud serve --workers N``): when ``PROMETHEUS_MULTIPROC_DIR`` is set
in the environment *before the process starts*, prometheus_client keeps every value in a
per-process memory-mapped file in that directory, and :func:`render` merges the files of all
workers, so any worker answers the scrape for the whole server. :func:`prepare_multiprocess`
(called by each API process at start) clears the files of earlier server runs. See
``docs/monitoring.md``.
"""

from __future__ import annotations

import atexit
import fcntl
import multiprocessing
import os
import time
from enum import StrEnum
from pathlib import Path

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import choose_encoder
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

__all__ = [
    "CACHE_TOTAL",
    "FALLBACK_TOTAL",
    "FRESHNESS_SECONDS",
    "FallbackReason",
    "IMPRESSIONS_TOTAL",
    "INGESTED_TOTAL",
    "MODEL_LOADED",
    "MODEL_VERSION",
    "REALTIME_UPDATES_TOTAL",
    "REQUEST_SECONDS",
    "UpdateOutcome",
    "multiprocess_dir",
    "observe_request",
    "prepare_multiprocess",
    "record_fallback",
    "record_model_served",
    "record_realtime_update",
    "render",
]

_ENV = "PROMETHEUS_MULTIPROC_DIR"


def multiprocess_dir() -> Path | None:
    """The multi-process metrics directory (``$PROMETHEUS_MULTIPROC_DIR``), or ``None``."""
    value = os.environ.get(_ENV)
    return Path(value) if value else None


# Counter names are given with their ``_total`` suffix (prometheus_client accepts it) so that a
# search for the exposed name lands here. In multi-process mode the value files are created as
# metrics are declared (unlabelled ones at once, below): the directory must exist first.
_dir = multiprocess_dir()
if _dir is not None:
    _dir.mkdir(parents=True, exist_ok=True)

REQUEST_SECONDS = Histogram(
    "tastebud_request_seconds",
    "HTTP request latency by route template (never the raw path), method and status.",
    ["route", "method", "status"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
CACHE_TOTAL = Counter(
    "tastebud_recommendation_cache_total",
    "Recommendation cache lookups by result (hit or miss).",
    ["result"],
)


class FallbackReason(StrEnum):
    """The values of :data:`FALLBACK_TOTAL`'s ``reason`` label, the only ones it takes."""

    REALTIME_UNAVAILABLE = "realtime_unavailable"
    """The real-time store did not answer within the budget: no session signals."""
    COLD_START = "cold_start"
    """A user unknown to the model and without a session: a cold-start list."""
    NO_MODEL = "no_model"
    """No production model yet (the request is answered 503)."""
    SESSION_ONLY = "session_only"
    """A user known only from the live session (``mode: session``)."""


FALLBACK_TOTAL = Counter(
    "tastebud_fallback_total",
    f"Recommendations served by a fallback path, by reason ({', '.join(FallbackReason)}).",
    ["reason"],
)


class UpdateOutcome(StrEnum):
    """The values of :data:`REALTIME_UPDATES_TOTAL`'s ``outcome`` label."""

    APPLIED = "applied"
    """Applied within the budget, before the events were acknowledged."""
    LATE = "late"
    """Applied after the budget: the events were acknowledged before the update finished."""
    DROPPED = "dropped"
    """Not applied: the real-time store failed, or was resting after a failure or stalled on an
    earlier call (the events are stored all the same; updates are not retried, as an update
    that timed out may still have been applied and counters must not count twice)."""


REALTIME_UPDATES_TOTAL = Counter(
    "tastebud_realtime_updates_total",
    "Real-time state updates of ingested event batches, by outcome "
    f"({', '.join(UpdateOutcome)}). One per batch.",
    ["outcome"],
)
MODEL_VERSION = Gauge(
    "tastebud_model_version",
    "Production version number of each model this server serves (highest over live workers).",
    ["name"],
    multiprocess_mode="livemax",
)
MODEL_LOADED = Gauge(
    "tastebud_model_loaded_timestamp_seconds",
    "When the served version of each model was loaded (Unix time; latest over live workers).",
    ["name"],
    multiprocess_mode="livemax",
)
FRESHNESS_SECONDS = Histogram(
    "tastebud_realtime_freshness_seconds",
    "Time from an event batch's arrival (received_ms) to its real-time state update being "
    "applied, i.e. visible to the next recommendation request. One observation per batch.",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
INGESTED_TOTAL = Counter(
    "tastebud_events_total",
    "Events through the ingest path by outcome (accepted, duplicate, rejected).",
    ["status"],
)
IMPRESSIONS_TOTAL = Counter(
    "tastebud_impressions_total",
    "Recommended items exposed to users (logged as impression events).",
)

# Labelled children looked up once (``labels()`` takes a lock and builds a key on every call), and
# every value is exposed from the start, at 0.
_FALLBACK = {reason: FALLBACK_TOTAL.labels(reason=reason.value) for reason in FallbackReason}
_UPDATES = {
    outcome: REALTIME_UPDATES_TOTAL.labels(outcome=outcome.value) for outcome in UpdateOutcome
}


def record_fallback(reason: FallbackReason) -> None:
    """Count one recommendation served by the fallback path ``reason``."""
    _FALLBACK[reason].inc()


def record_realtime_update(outcome: UpdateOutcome) -> None:
    """Count one event batch's real-time state update by its ``outcome``."""
    _UPDATES[outcome].inc()


# Methods outside this set are counted as "other": a client must not be able to mint new
# series by sending made-up methods.
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# (route, method, status) -> the labelled child; .labels() takes a lock and builds the key on
# every call, a dict hit does not. Bounded: routes, methods and statuses are finite sets.
_request_children: dict[tuple[str, str, int], Histogram] = {}


def observe_request(route: str, method: str, status: int, seconds: float) -> None:
    """Record one HTTP request in :data:`REQUEST_SECONDS` (the access-log middleware calls this).

    Args:
        route: The matched route template (``/v1/users/{user_id}``), never the raw path.
        method: The HTTP method.
        status: The response status code.
        seconds: Wall time from the request's arrival to the end of the response.
    """
    key = (route, method, status)
    child = _request_children.get(key)
    if child is None:
        label = method if method in _METHODS else "other"
        child = REQUEST_SECONDS.labels(route=route, method=label, status=str(status))
        _request_children[key] = child
    child.observe(seconds)


def record_model_served(name: str, version: int, loaded_at: float | None = None) -> None:
    """Set :data:`MODEL_VERSION` and :data:`MODEL_LOADED` for model ``name``.

    Args:
        name: The model's registry name (``recommendations``).
        version: The version number this process now serves.
        loaded_at: Unix time of the load (default: now).
    """
    MODEL_VERSION.labels(name=name).set(version)
    MODEL_LOADED.labels(name=name).set(time.time() if loaded_at is None else loaded_at)


def render(accept: str | None = None) -> tuple[bytes, str]:
    """The exposition of every metric and its content type.

    Args:
        accept: The scraper's ``Accept`` header; OpenMetrics when it asks for it, otherwise the
            Prometheus text format.

    Returns:
        ``(body, content_type)``. In multi-process mode the values of every worker, merged.
    """
    encoder, content_type = choose_encoder(accept or "")
    if multiprocess_dir() is None:
        return encoder(REGISTRY), content_type
    # A fresh registry per scrape, as prometheus_client's multi-process mode requires: the
    # default one holds this process's values only.
    registry = CollectorRegistry()
    MultiProcessCollector(registry)  # type: ignore[no-untyped-call]  # untyped upstream
    return encoder(registry), content_type


def _file_pid(path: Path) -> int | None:
    """The process id in a value file's name (``counter_1234.db``, ``gauge_livemax_1234.db``)."""
    try:
        return int(path.stem.rsplit("_", 1)[1])
    except (IndexError, ValueError):
        return None


def _stat(pid: int) -> list[str] | None:
    """Fields of ``/proc/<pid>/stat`` after the command name (state, ppid, ...), or ``None``."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _server_root() -> int:
    """The process that started this server: uvicorn's supervisor for a worker (a
    ``multiprocessing`` child), this process when it serves alone."""
    parent = multiprocessing.parent_process()
    return parent.pid if parent is not None and parent.pid is not None else os.getpid()


def _in_run(pid: int, root: int) -> bool:
    """Whether ``pid`` belongs to the server run rooted at ``root`` (the root or a live child)."""
    if pid in (root, os.getpid()):
        return True
    fields = _stat(pid)
    if fields is None:  # gone, or no /proc: keep what is alive
        return _alive(pid)
    return fields[1] == str(root)


def prepare_multiprocess() -> None:
    """Get ``$PROMETHEUS_MULTIPROC_DIR`` ready for this API process (no-op without it).

    Each worker of ``tastebud serve`` calls this at start. The first worker of a server run
    deletes the files left by earlier runs (prometheus_client needs the directory wiped between
    runs, or old counts are summed into new ones); the others find the run marker and keep
    everything, because deleting a dead worker's counters mid-run would make totals go
    backwards. Live gauges (model versions) of dead processes are always dropped, and this
    process drops its own at exit.
    """
    path = multiprocess_dir()
    if path is None:
        return
    path.mkdir(parents=True, exist_ok=True)
    root = _server_root()
    root_stat = _stat(root)
    # The root's start time tells a new run from an old one whose root pid was reused.
    run_id = f"{root}:{root_stat[19] if root_stat else ''}"
    marker = path / ".run"
    with (path / ".lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            previous = marker.read_text() if marker.exists() else ""
            for file in path.glob("*.db"):
                pid = _file_pid(file)
                if pid is None:
                    continue
                if previous != run_id and not _in_run(pid, root):
                    file.unlink(missing_ok=True)
                elif not _alive(pid):
                    mark_process_dead(pid, str(path))  # type: ignore[no-untyped-call]
            if previous != run_id:
                marker.write_text(run_id)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    atexit.register(mark_process_dead, os.getpid(), str(path))
