"""MovieLens 100K (``u.data``, ``u.item``, ``u.user``, ``u.genre``) into Tastebud.

Each rating becomes a ``rating`` event at its timestamp; ``u.item`` fills the catalogue (title,
release date as ``created_at``, genres as categories); ``u.user`` fills user attributes (age
bucket, gender, occupation, and the first digit of the zip code as a coarse region: a full zip
code is a quasi-identifier).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

from tastebud.catalog import Catalog
from tastebud.errors import InvalidInput
from tastebud.events.ingest import Ingestor
from tastebud.importers._common import EventSink, ImportSummary, Progress
from tastebud.privacy import Pseudonymizer

__all__ = ["age_bucket", "count_lines", "import_movielens"]

_DEFAULT_GENRES = (
    "unknown",
    "Action",
    "Adventure",
    "Animation",
    "Children's",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
)


def age_bucket(age: int) -> str:
    """MovieLens-1M style age buckets.

    >>> [age_bucket(a) for a in (7, 18, 30, 40, 47, 52, 70)]
    ['under-18', '18-24', '25-34', '35-44', '45-49', '50-55', '56+']
    """
    for limit, name in (
        (18, "under-18"),
        (25, "18-24"),
        (35, "25-34"),
        (45, "35-44"),
        (50, "45-49"),
        (56, "50-55"),
    ):
        if age < limit:
            return name
    return "56+"


def _read(path: Path) -> list[str]:
    return path.read_text(encoding="latin-1").splitlines()


def _genres(directory: Path) -> tuple[str, ...]:
    path = directory / "u.genre"
    if not path.exists():
        return _DEFAULT_GENRES
    pairs = [line.split("|") for line in _read(path) if line.strip()]
    return tuple(name for name, _ in sorted(pairs, key=lambda p: int(p[1])))


def _items(directory: Path, catalog: Catalog, summary: ImportSummary) -> int:
    genres = _genres(directory)
    entries = []
    lines: list[int] = []
    for n, line in enumerate(_read(directory / "u.item"), start=1):
        if not line.strip():
            continue
        f = line.split("|")
        if len(f) < 5 + len(genres):
            summary.reject(n, f"u.item: expected {5 + len(genres)} fields, got {len(f)}")
            continue
        flags = f[5 : 5 + len(genres)]
        cats = [g for g, flag in zip(genres, flags, strict=True) if flag == "1"]
        created = None
        if f[2]:
            try:
                created = datetime.strptime(f[2], "%d-%b-%Y").replace(tzinfo=UTC).isoformat()
            except ValueError:
                created = None
        entries.append(
            {
                "item_id": f[0],
                "title": f[1] or None,
                "categories": cats,
                "type": "movie",
                "created_at": created,
                "attributes": {"imdb_url": f[4]} if f[4] else {},
            }
        )
        lines.append(n)
    outcome = catalog.put_items(entries, int(time.time() * 1000))
    for r, n in zip(outcome.results, lines, strict=True):
        if r.status == "rejected":
            summary.reject(n, f"u.item: {r.reason}")
    return len(entries) - outcome.count("rejected")


def _users(directory: Path, catalog: Catalog, summary: ImportSummary) -> int:
    path = directory / "u.user"
    if not path.exists():
        return 0
    entries = []
    for n, line in enumerate(_read(path), start=1):
        if not line.strip():
            continue
        f = line.split("|")
        if len(f) != 5 or not f[1].isdigit():
            summary.reject(n, "u.user: expected 'id|age|gender|occupation|zip'")
            continue
        zip_code = f[4].strip()
        entries.append(
            {
                "user_id": f[0],
                "age_bucket": age_bucket(int(f[1])),
                "gender": f[2] or None,
                "occupation": f[3] or None,
                "region": f"zip-{zip_code[0]}" if zip_code[:1].isdigit() else "zip-other",
            }
        )
    outcome = catalog.put_users(entries, int(time.time() * 1000))
    return len(entries) - outcome.count("rejected")


def import_movielens(
    directory: Path,
    ingestor: Ingestor,
    catalog: Catalog,
    pseudonymizer: Pseudonymizer,
    *,
    progress: Progress | None = None,
) -> ImportSummary:
    """Import a MovieLens 100K directory. Re-importing stores nothing twice (the event ids are
    keyed digests of user, item and time).

    Raises:
        InvalidInput: ``u.data`` or ``u.item`` is missing.
    """
    for name in ("u.data", "u.item"):
        if not (directory / name).is_file():
            raise InvalidInput(f"{directory} has no {name}: is it a MovieLens 100K directory?")
    summary = ImportSummary()
    summary.items = _items(directory, catalog, summary)
    summary.users = _users(directory, catalog, summary)
    sink = EventSink(ingestor, summary, progress=progress)
    with (directory / "u.data").open(encoding="latin-1") as fh:
        for n, line in enumerate(fh, start=1):
            f = line.split()
            if not f:
                continue
            if len(f) != 4 or not (f[2].replace(".", "", 1).isdigit() and f[3].isdigit()):
                sink.skip(n, "u.data: expected 'user item rating timestamp'")
                continue
            user, item, rating, ts = f
            sink.add(
                n,
                {
                    "event_id": "ml-" + pseudonymizer.opaque("movielens", f"{user}\t{item}\t{ts}"),
                    "event_type": "rating",
                    "user_id": user,
                    "item_id": item,
                    "timestamp": int(ts),
                    "data": {"value": float(rating)},
                },
            )
    sink.flush()
    return summary


def count_lines(directory: Path) -> int:
    """Rows in ``u.data`` (for a progress bar's total)."""
    with (directory / "u.data").open("rb") as fh:
        return sum(1 for line in fh if line.strip())
