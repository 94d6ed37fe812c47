"""Any CSV/TSV of user-item interactions into events.

Handles files with or without a header (MovieLens latest ``userId,movieId,rating,timestamp``,
Last.fm ``userID artistID weight``, ``u.data``...). Columns are named by header name or by
1-based position. Without a time column every row gets a stable synthetic time (2000-01-01 UTC
plus one second per line), so the file order is kept and re-imports store nothing twice.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from tastebud.errors import InvalidInput
from tastebud.events.data import DATA_MODELS
from tastebud.events.ingest import Ingestor
from tastebud.importers._common import EventSink, ImportedEvent, ImportSummary, Progress
from tastebud.privacy import Pseudonymizer

__all__ = ["InteractionSpec", "count_rows", "import_interactions", "sniff_delimiter"]

_SYNTHETIC_EPOCH = datetime(2000, 1, 1, tzinfo=UTC).timestamp()
_ITEM_TYPES = frozenset(
    {"interaction", "rating", "click", "content_engagement", "conversion", "feedback", "page_view"}
)
_DELIMITERS = {
    "tab": "\t",
    "\\t": "\t",
    "comma": ",",
    "semicolon": ";",
    "pipe": "|",
    "space": " ",
    "whitespace": " ",
}


@dataclass(frozen=True)
class InteractionSpec:
    """How to read an interactions file."""

    user: str
    """User column: a header name or a 1-based position."""
    item: str
    """Item column."""
    time: str | None = None
    """Time column (optional)."""
    weight: str | None = None
    """Weight column: the interaction weight, or the rating value with ``event_type=rating``."""
    event_type: str = "interaction"
    delimiter: str | None = None
    """Field separator; sniffed from the first line when ``None``."""
    time_format: Literal["auto", "unix", "iso"] = "auto"
    """``unix`` (seconds; values above 1e11 are taken as milliseconds) or ``iso`` (a time
    without a zone is UTC); ``auto`` decides per value."""
    header: bool | None = None
    """Whether the first line is a header; guessed when ``None``."""

    def __post_init__(self) -> None:
        if self.event_type not in _ITEM_TYPES:
            raise InvalidInput(
                f"--type must be one of {', '.join(sorted(_ITEM_TYPES))} (events about an item)"
            )
        if self.event_type == "rating" and self.weight is None:
            raise InvalidInput("--type rating needs --weight COL (the rating value)")
        assert self.event_type in DATA_MODELS


def sniff_delimiter(line: str) -> str:
    r"""The likeliest field separator of a line (``" "`` means any whitespace).

    >>> sniff_delimiter("1\t2\t3"), sniff_delimiter("a,b,c"), sniff_delimiter("1 2 3")
    ('\t', ',', ' ')
    """
    counts = {d: line.count(d) for d in ("\t", ",", ";", "|")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] > 0 else " "


def _split(line: str, delimiter: str) -> list[str]:
    if delimiter == " ":
        return line.split()
    return next(csv.reader([line], delimiter=delimiter))


def _is_number(value: str) -> bool:
    try:
        float(value)
        return True
    except ValueError:
        return False


def _timestamp(value: str, fmt: str) -> float | str:
    if fmt in ("unix", "auto") and _is_number(value):
        ts = float(value)
        return ts / 1000.0 if ts > 1e11 else ts
    if fmt == "unix":
        raise ValueError("not a Unix timestamp")
    dt = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.isoformat()


def _resolve(spec: InteractionSpec, header: list[str] | None) -> dict[str, int]:
    cols: dict[str, int] = {}
    for role in ("user", "item", "time", "weight"):
        name = getattr(spec, role)
        if name is None:
            continue
        if header is not None and name in header:
            cols[role] = header.index(name)
        elif name.isdigit() and int(name) >= 1:
            cols[role] = int(name) - 1
        elif header is None:
            raise InvalidInput(
                f"--{role} {name!r}: without a header, give a column number (1-based)"
            )
        else:
            raise InvalidInput(
                f"--{role} {name!r} is not a column; the header has: {', '.join(header)}"
            )
    return cols


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    with path.open(encoding="utf-8-sig", errors="replace") as fh:
        for n, line in enumerate(fh, start=1):
            line = line.rstrip("\r\n")
            if line.strip():
                yield n, line


def count_rows(path: Path) -> int:
    """Non-empty lines (for a progress bar's total)."""
    with path.open("rb") as fh:
        return sum(1 for line in fh if line.strip())


def import_interactions(
    path: Path,
    spec: InteractionSpec,
    ingestor: Ingestor,
    pseudonymizer: Pseudonymizer,
    *,
    progress: Progress | None = None,
) -> ImportSummary:
    """Import an interactions file; bad rows are counted with their line numbers.

    Raises:
        InvalidInput: the file is empty or a column does not exist.
    """
    rows = _lines(path)
    try:
        first_no, first = next(rows)
    except StopIteration:
        raise InvalidInput(f"{path} is empty") from None
    delimiter = _DELIMITERS.get(spec.delimiter or "", spec.delimiter) or sniff_delimiter(first)
    fields = _split(first, delimiter)
    header_flag = spec.header
    if header_flag is None:
        named = any(
            not (getattr(spec, r) or "1").isdigit() for r in ("user", "item", "time", "weight")
        )
        probe = _resolve(spec, None) if not named else {}
        numeric_roles = [r for r in ("weight",) if r in probe and probe[r] < len(fields)]
        header_flag = (
            named
            or any(not _is_number(fields[probe[r]]) for r in numeric_roles)
            or (
                "time" in probe
                and probe["time"] < len(fields)
                and spec.time_format != "iso"
                and not _is_number(fields[probe["time"]])
            )
        )
    header = fields if header_flag else None
    cols = _resolve(spec, header)
    width = max(cols.values()) + 1
    summary = ImportSummary()
    sink = EventSink(ingestor, summary, progress=progress)
    namespace = f"interactions:{path.name}"

    def handle(n: int, line: str) -> None:
        f = _split(line, delimiter)
        if len(f) < width:
            sink.skip(n, f"expected at least {width} fields, got {len(f)}")
            return
        user, item = f[cols["user"]].strip(), f[cols["item"]].strip()
        timestamp: str | float
        if "time" in cols:
            try:
                timestamp = _timestamp(f[cols["time"]], spec.time_format)
            except ValueError:
                sink.skip(n, f"time {f[cols['time']]!r} is not a {spec.time_format} time")
                return
        else:
            timestamp = _SYNTHETIC_EPOCH + n
        weight: float | None = None
        if "weight" in cols:
            try:
                weight = float(f[cols["weight"]])
            except ValueError:
                sink.skip(n, f"weight {f[cols['weight']]!r} is not a number")
                return
        key = f"{user}\t{item}\t{timestamp}\t{weight}"
        event: ImportedEvent = {
            "event_id": "ix-" + pseudonymizer.opaque(namespace, key),
            "event_type": spec.event_type,
            "user_id": user,
            "item_id": item,
            "timestamp": timestamp,
        }
        if spec.event_type == "interaction":
            event["data"] = {"weight": 1.0 if weight is None else weight}
        elif spec.event_type == "rating":
            event["data"] = {"value": weight}
        elif spec.event_type == "feedback":
            event["data"] = {"kind": "like"}
        sink.add(n, event)

    if header is None:
        handle(first_no, first)
    elif progress is not None:
        progress(1)
    for n, line in rows:
        handle(n, line)
    sink.flush()
    return summary
