"""Every served list becomes an ``impression`` event (model version, list id), for CTR and A/B
analysis. Requests only enqueue; a daemon thread ingests the queue in batches through the normal
ingest path (consent gate included: a user without analytics consent leaves no impressions)."""

from __future__ import annotations

import queue
import time
import uuid
from collections.abc import Callable, Sequence
from typing import NotRequired, TypedDict

from tastebud.background import Poller
from tastebud.monitoring import IMPRESSIONS_TOTAL, get_logger
from tastebud.serving.types import Context, Exposure, ModelRef, Recommendation

__all__ = [
    "ImpressionContext",
    "ImpressionData",
    "ImpressionEvent",
    "ImpressionLog",
    "exposure_impression",
    "impression_event",
]

_log = get_logger(__name__)


class ImpressionData(TypedDict):
    """The ``data`` of an ``impression`` event (docs/events.md)."""

    item_ids: list[str]
    list_id: str
    model_version: str
    """``<model name>/v<version>``."""
    mode: str
    """How the list was made: ``personalized``, ``session`` or ``cold_start``."""
    latency_ms: float
    """Time the engine took to make the answer."""
    experiments: NotRequired[dict[str, str]]
    """The experiments the user was exposed to, and their variants."""
    teams: NotRequired[list[str | None]]
    """Interleaving: the variant that placed each item, position by position (``None``: a
    slot filled after one list ran out, credited to nobody)."""
    error: NotRequired[bool]
    """An experiment's variant could not be served (production answered instead)."""
    surface: NotRequired[str]
    """``rank`` or ``similar`` (absent: a recommendations list)."""


class ImpressionContext(TypedDict):
    """The request context recorded with an impression (only what the request gave)."""

    device_type: NotRequired[str]
    locale: NotRequired[str]


class ImpressionEvent(TypedDict):
    """An ``impression`` event as the ingest path takes it."""

    event_id: str
    event_type: str
    user_id: NotRequired[str]
    anonymous_id: NotRequired[str]
    timestamp: float
    data: ImpressionData
    context: ImpressionContext


def impression_event(
    answer: Recommendation,
    user_id: str,
    context: Context,
    *,
    now: float | None = None,
    latency_ms: float = 0.0,
    teams: tuple[str | None, ...] | None = None,
    error: bool = False,
    anonymous: bool = False,
) -> ImpressionEvent:
    """The ``impression`` event of one answer, for the user's raw id (pseudonymized by the
    ingest path, never stored raw); its id derives from the answer's ``list_id``. It records
    the experiments the user was exposed to, for their analysis."""
    ctx: ImpressionContext = {}
    if context.device:
        ctx["device_type"] = context.device
    if context.locale:
        ctx["locale"] = context.locale
    model = answer.model
    data: ImpressionData = {
        "item_ids": [i.item_id for i in answer.items],
        "list_id": answer.list_id,
        "model_version": f"{model.name}/v{model.version}",
        "mode": answer.mode.value,
        "latency_ms": round(latency_ms, 3),
    }
    if answer.exposures:
        data["experiments"] = {e.experiment: e.variant for e in answer.exposures}
    if teams is not None:
        data["teams"] = list(teams)
    if error:
        data["error"] = True
    event: ImpressionEvent = {
        "event_id": f"imp-{answer.list_id}",
        "event_type": "impression",
        "timestamp": time.time() if now is None else now,
        "data": data,
        "context": ctx,
    }
    if anonymous:
        event["anonymous_id"] = user_id
    else:
        event["user_id"] = user_id
    return event


def exposure_impression(
    item_ids: list[str],
    user_id: str,
    model: ModelRef,
    exposures: tuple[Exposure, ...],
    surface: str,
    latency_ms: float,
    error: bool = False,
) -> ImpressionEvent:
    """The ``impression`` of a ``rank`` or ``similar`` answer to a user in experiments (those
    answers are otherwise not logged); ``error``: the variant's model could not serve it."""
    list_id = uuid.uuid4().hex
    event: ImpressionEvent = {
        "event_id": f"imp-{list_id}",
        "event_type": "impression",
        "user_id": user_id,
        "timestamp": time.time(),
        "data": {
            "item_ids": item_ids,
            "list_id": list_id,
            "model_version": f"{model.name}/v{model.version}",
            "mode": "personalized",
            "latency_ms": round(latency_ms, 3),
            "experiments": {e.experiment: e.variant for e in exposures},
            "surface": surface,
        },
        "context": {},
    }
    if error:
        event["data"]["error"] = True
    return event


class ImpressionLog:
    """A bounded queue of impression events flushed every ``interval_s``.

    Args:
        ingest: Stores a batch of raw events (``Ingestor.ingest``).
        interval_s: Flush period.
        max_queue: Beyond this many waiting impressions new ones are dropped (and counted)
            rather than letting memory grow when the database is down.
    """

    def __init__(
        self,
        ingest: Callable[[Sequence[ImpressionEvent]], object],
        *,
        interval_s: float = 0.2,
        max_queue: int = 100_000,
    ) -> None:
        self._ingest = ingest
        self.interval_s = interval_s
        self._queue: queue.Queue[ImpressionEvent] = queue.Queue(max_queue)
        self.dropped = 0
        self.logged = 0
        self._poller = Poller(
            self.flush,
            lambda: self.interval_s,
            name="tastebud-impressions",
            failed=lambda exc: _log.warning("impressions not stored yet", exc_info=exc),
            final=True,
        )

    def log(self, event: ImpressionEvent) -> None:
        """Enqueue one impression event (never blocks); counted in
        ``tastebud_impressions_total``."""
        IMPRESSIONS_TOTAL.inc()
        try:
            self._queue.put_nowait(event)
        except queue.Full:
            self.dropped += 1

    def start(self) -> None:
        """Flush in the background until :meth:`stop`."""
        self._poller.start()

    def flush(self) -> int:
        """Store everything queued now; returns how many."""
        batch: list[ImpressionEvent] = []
        while len(batch) < 5000:
            try:
                batch.append(self._queue.get_nowait())
            except queue.Empty:
                break
        if batch:
            try:
                self._ingest(batch)
                self.logged += len(batch)
            except Exception:  # the database is down: these impressions are lost, counted
                self.dropped += len(batch)
                _log.warning("impressions not stored", count=len(batch), exc_info=True)
        return len(batch)

    def stop(self) -> None:
        """Flush what is queued and stop."""
        if self._poller.running:
            self._poller.stop(timeout=10)  # its last turn flushes
        else:
            self.flush()
