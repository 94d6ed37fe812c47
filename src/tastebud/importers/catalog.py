"""Item catalogues and user attributes from CSV (with a header) or NDJSON files."""

from __future__ import annotations

import csv
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson
from pydantic import JsonValue

from tastebud.catalog import BatchOutcome, Catalog, UserIn
from tastebud.errors import InvalidInput
from tastebud.importers._common import Progress

__all__ = ["TableSummary", "import_items", "import_users", "read_table"]

_ITEM_FIELDS = frozenset(
    {"item_id", "title", "category", "categories", "type", "created_at", "hidden"}
)
_USER_FIELDS = frozenset(UserIn.model_fields) | {"user_id"}
_LISTS = frozenset({"categories", "interests"})
_TRUE = {"true", "yes", "1", "y", "t"}
_FALSE = {"false", "no", "0", "n", "f", ""}


class TableSummary:
    """Counts of an items or users import."""

    def __init__(self, noun: str) -> None:
        self.noun = noun
        self.created = 0
        self.updated = 0
        self.rejected: list[tuple[int, str]] = []

    def line(self) -> str:
        """E.g. ``1,682 items (1,682 created, 0 updated), 0 rejected``."""
        total = self.created + self.updated
        return (
            f"{total:,} {self.noun} ({self.created:,} created, {self.updated:,} updated), "
            f"{len(self.rejected):,} rejected"
        )


def _scalar(value: str) -> bool | int | float | str:
    """CSV cells: numbers become numbers, true/false booleans, the rest stays text."""
    low = value.strip().lower()
    if low in ("true", "false"):
        return low == "true"
    try:
        return int(value)
    except ValueError:
        pass
    try:
        return float(value)
    except ValueError:
        return value


def read_table(path: Path) -> Iterator[tuple[int, dict[str, JsonValue]]]:
    """Rows of a CSV/TSV file with a header, or of an NDJSON file, with line numbers.

    A row is the user's own data, keyed by their column names: text cells from CSV, any JSON
    from NDJSON (a line that is not a JSON object comes as ``{"__invalid__": True}``).

    Raises:
        InvalidInput: the file is empty, or an NDJSON line is not a JSON object (reported with
            its line number by the importers instead, see :func:`import_items`).
    """
    with path.open(encoding="utf-8-sig") as fh:
        head = fh.read(4096)
    if not head.strip():
        raise InvalidInput(f"{path} is empty")
    if head.lstrip().startswith("{"):
        with path.open("rb") as fh:
            for n, line in enumerate(fh, start=1):
                if line.strip():
                    try:
                        value = orjson.loads(line)
                    except orjson.JSONDecodeError:
                        value = None
                    yield n, value if isinstance(value, dict) else {"__invalid__": True}
        return
    dialect = csv.Sniffer().sniff(head.splitlines()[0], delimiters=",\t;|")
    with path.open(encoding="utf-8-sig", newline="") as fh:
        reader = csv.DictReader(fh, dialect=dialect)
        for row in reader:
            yield reader.line_num, {k.strip(): v for k, v in row.items() if k is not None}


def _from_csv(
    row: dict[str, JsonValue], known: frozenset[str], id_field: str
) -> dict[str, JsonValue]:
    """Typed entry from a CSV row: known columns as they are, lists split on '|', everything
    else into ``attributes`` (items) or extra fields (users)."""
    if "id" in row and id_field not in row:
        row[id_field] = row.pop("id")
    out: dict[str, JsonValue] = {}
    attributes: dict[str, JsonValue] = {}
    for key, value in row.items():
        if not isinstance(value, str):
            out[key] = value  # NDJSON: already typed
            continue
        if value == "" and key != id_field:
            continue
        if key in _LISTS:
            out[key] = [v.strip() for v in value.split("|") if v.strip()]
        elif key == "hidden":
            low = value.strip().lower()
            out[key] = low in _TRUE if low in _TRUE | _FALSE else value
        elif key in known:
            out[key] = value
        else:
            attributes[key] = _scalar(value)
    if attributes:
        if id_field == "item_id":
            given = out.setdefault("attributes", {})  # NDJSON may give some attributes
            if isinstance(given, dict):
                given.update(attributes)
        else:
            out.update(attributes)
    return out


def _import(
    path: Path,
    noun: str,
    known: frozenset[str],
    id_field: str,
    put: Callable[[list[dict[str, JsonValue]], int], BatchOutcome],
    progress: Progress | None,
    batch_size: int = 2000,
) -> TableSummary:
    summary = TableSummary(noun)
    batch: list[dict[str, JsonValue]] = []
    lines: list[int] = []

    def flush() -> None:
        outcome = put(batch, int(time.time() * 1000))
        for r, n in zip(outcome.results, lines, strict=True):
            if r.status == "created":
                summary.created += 1
            elif r.status == "updated":
                summary.updated += 1
            else:
                summary.rejected.append((n, r.reason or "rejected"))
        if progress is not None:
            progress(len(batch))
        batch.clear()
        lines.clear()

    for n, row in read_table(path):
        if row.get("__invalid__"):
            summary.rejected.append((n, "not a JSON object"))
            continue
        batch.append(_from_csv(row, known, id_field))
        lines.append(n)
        if len(batch) >= batch_size:
            flush()
    if batch:
        flush()
    return summary


def import_items(path: Path, catalog: Catalog, *, progress: Progress | None = None) -> TableSummary:
    """Import a catalogue: columns ``item_id`` (or ``id``), ``title``, ``category``,
    ``categories`` (``|``-separated), ``type``, ``created_at`` (ISO-8601 with zone), ``hidden``;
    any other column becomes an attribute."""
    return _import(path, "items", _ITEM_FIELDS, "item_id", catalog.put_items, progress)


def import_users(path: Path, catalog: Catalog, *, progress: Progress | None = None) -> TableSummary:
    """Import user attributes: ``user_id`` (or ``id``), ``segment``, ``skill_level``,
    ``interests`` (``|``-separated), ``age_bucket``, ``gender``, ``occupation``, ``region``,
    ``locale``, ``country``; any other column is kept as an attribute."""
    return _import(path, "users", _USER_FIELDS, "user_id", catalog.put_users, progress)
