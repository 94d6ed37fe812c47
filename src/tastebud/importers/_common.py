"""What every importer shares: batching events into the ingest path and the summary."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NotRequired

from typing_extensions import TypedDict

from tastebud.events.ingest import Ingestor

__all__ = [
    "EventSink",
    "ImportSummary",
    "ImportedEvent",
    "Progress",
]

Progress = Callable[[int], None]


class ImportedEvent(TypedDict):
    """An event an importer makes from one row, in the JSON shape ``POST /v1/events`` takes."""

    event_id: str
    """A keyed digest of the row, so that re-imports store nothing twice."""
    event_type: str
    user_id: str
    item_id: str
    timestamp: str | float
    """ISO-8601, or seconds since the epoch."""
    data: NotRequired[dict[str, float | str | None]]
    """The payload of the event type (a weight, a rating value, a feedback kind)."""


@dataclass
class ImportSummary:
    """Counts of one import, and where rows went wrong (line numbers)."""

    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    items: int | None = None
    users: int | None = None
    reasons: Counter[str] = field(default_factory=Counter)
    lines: dict[str, list[int]] = field(default_factory=dict)
    """First line numbers (up to 20) per rejection reason."""

    def reject(self, line: int, reason: str) -> None:
        """Count a rejected row."""
        self.rejected += 1
        self.reasons[reason] += 1
        where = self.lines.setdefault(reason, [])
        if len(where) < 20:
            where.append(line)

    def line(self) -> str:
        """The one-line summary, e.g. ``100,000 events accepted, 0 duplicates, 0 rejected;
        1,682 items; 943 users``."""
        text = (
            f"{self.accepted:,} events accepted, {self.duplicates:,} duplicates, "
            f"{self.rejected:,} rejected"
        )
        if self.items is not None:
            text += f"; {self.items:,} items"
        if self.users is not None:
            text += f"; {self.users:,} users"
        return text

    def details(self, limit: int = 10) -> list[str]:
        """The most frequent rejection reasons with example line numbers."""
        out = []
        for reason, count in self.reasons.most_common(limit):
            where = self.lines[reason]
            more = ", ..." if count > len(where) else ""
            out.append(
                f"{count:,} rejected: {reason} (line {', '.join(map(str, where[:5]))}{more})"
            )
        return out


class EventSink:
    """Collects raw events with their source line numbers and ingests them in batches.

    Args:
        ingestor: The same ingest path as the API.
        summary: Where counts go.
        batch_size: Events per transaction.
        progress: Called with the number of rows handled after each batch.
        source: Recorded with every event (``import``: historical timestamps).
    """

    def __init__(
        self,
        ingestor: Ingestor,
        summary: ImportSummary,
        *,
        batch_size: int = 5000,
        progress: Progress | None = None,
        source: str = "import",
    ) -> None:
        self.ingestor = ingestor
        self.summary = summary
        self.batch_size = batch_size
        self.progress = progress
        self.source = source
        self._events: list[ImportedEvent] = []
        self._lines: list[int] = []
        self._skipped = 0

    def add(self, line: int, event: ImportedEvent) -> None:
        """Queue one event (flushed when the batch is full)."""
        self._events.append(event)
        self._lines.append(line)
        if len(self._events) >= self.batch_size:
            self.flush()

    def skip(self, line: int, reason: str) -> None:
        """Count a row that could not even be turned into an event."""
        self.summary.reject(line, reason)
        self._skipped += 1

    def flush(self) -> None:
        """Ingest what is queued."""
        if self._events:
            # Historical datasets (MovieLens 100K is from 1997-98): any time after the epoch.
            result = self.ingestor.ingest(self._events, source=self.source, earliest_ms=1)
            self.summary.accepted += result.accepted
            self.summary.duplicates += result.duplicates
            for r, line in zip(result.results, self._lines, strict=True):
                if r.status == "rejected":
                    self.summary.reject(line, r.reason or "rejected")
        if self.progress is not None:
            self.progress(len(self._events) + self._skipped)
        self._events, self._lines, self._skipped = [], [], 0
