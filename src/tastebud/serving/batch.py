"""Batch personalization: every user's (or a list of users') top ``k`` written to one file.

The output keys users by **pseudonym**, the keyed hash Tastebud stores instead of a raw user id
(raw ids are never stored, so they cannot be written). Two formats, chosen by the extension:

- ``.ndjson`` / ``.jsonl``: one line per user, ``{"user_key": ..., "items": [{"item_id": ...,
  "score": ...}, ...], "model": {"name": ..., "version": ..., "artifact_id": ...}}``, scores
  rounded to 6 decimals as the API rounds them.
- ``.parquet``: long format, one row per (user, rank): ``user_key``, ``rank`` (1 = best),
  ``item_id``, ``score`` (``float32``); the model version is in the file's key-value metadata
  (``tastebud.model``, JSON).

``score`` has the scale of the API's: the relevance within the user's list, in [0, 1], 1 for the
best item and 0 for the last (:func:`list_relevance`; every item 1 when all score the same).

Users whose vocabulary slot starts with ``~`` were removed (consent withdrawn or erased) and are
skipped. Users are written in chunks, so memory stays bounded whatever the number of users, and
the file appears atomically (a temporary file in the same directory, then ``os.replace``): a
reader never sees half a file, and a failed run leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal

import numpy as np
import orjson
from numpy.typing import NDArray
from threadpoolctl import threadpool_limits

from tastebud.errors import InvalidInput
from tastebud.models import Recommendations
from tastebud.monitoring import get_logger
from tastebud.registry.recommender import LoadedModel

__all__ = [
    "BatchResult",
    "FORMATS",
    "REMOVED_PREFIX",
    "UserSelection",
    "list_relevance",
    "output_format",
    "recommend_all",
    "select_users",
]

_log = get_logger(__name__)

Format = Literal["ndjson", "parquet"]

FORMATS: dict[str, Format] = {".ndjson": "ndjson", ".jsonl": "ndjson", ".parquet": "parquet"}
"""Output format by file extension."""

REMOVED_PREFIX = "~"
"""A user vocabulary slot starting with this belongs to a removed user (no pseudonym does)."""


@dataclass(frozen=True)
class BatchResult:
    """What a batch run wrote."""

    users: int
    """Users written (one NDJSON line, or up to ``k`` Parquet rows, each)."""
    seconds: float
    """Wall time, loading excluded (the model is already loaded)."""
    path: Path
    format: Format
    removed: int = 0
    """Removed users (consent withdrawn) skipped."""
    unknown: int = 0
    """Requested keys the model does not know, skipped (only with ``users=``)."""

    @property
    def users_per_second(self) -> float:
        """Throughput."""
        return self.users / self.seconds if self.seconds > 0 else float("inf")


@dataclass(frozen=True)
class UserSelection:
    """The model's user indices to write, and what was left out."""

    idx: NDArray[np.int64]
    removed: int
    unknown: int


def output_format(path: Path) -> Format:
    """The format ``path``'s extension asks for.

    Raises:
        InvalidInput: the extension is not ``.ndjson``, ``.jsonl`` or ``.parquet``.
    """
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise InvalidInput(
            f"unknown output format {path.suffix or '(no extension)'!r} for {path.name}: "
            f"use one of {', '.join(FORMATS)}"
        )
    return fmt


def select_users(loaded: LoadedModel, users: list[str] | None = None) -> UserSelection:
    """Indices of every user of the model (``users=None``, vocabulary order) or of the given
    pseudonyms (first-seen order, duplicates once), removed users and unknown keys skipped."""
    if users is None:
        ids = loaded.users.ids
        removed = np.fromiter((u.startswith(REMOVED_PREFIX) for u in ids), bool, len(ids))
        return UserSelection(np.flatnonzero(~removed).astype(np.int64), int(removed.sum()), 0)
    keys = list(dict.fromkeys(users))
    idx = loaded.users.indices(keys)
    known = idx >= 0
    ids = loaded.users.ids
    gone = np.fromiter(
        (i >= 0 and ids[i].startswith(REMOVED_PREFIX) for i in idx.tolist()), bool, len(idx)
    )
    return UserSelection(idx[known & ~gone], int(gone.sum()), int((~known).sum()))


def recommend_all(
    loaded: LoadedModel,
    k: int,
    out: Path,
    *,
    version_info: Mapping[str, object],
    chunk: int = 8192,
    progress: Callable[[int], None] | None = None,
    users: list[str] | None = None,
) -> BatchResult:
    """Write the top ``k`` of every user (or of ``users``, pseudonyms) to ``out``.

    Training items (``loaded.seen``) are excluded, as when serving; fewer than ``k`` items are
    written where fewer qualify.

    Args:
        loaded: The model and its vocabularies.
        k: Items per user.
        out: The file to write; its extension picks the format (see :data:`FORMATS`).
        version_info: The model's ``name``, ``version`` and ``artifact_id``, written with the
            recommendations.
        chunk: Users per chunk (memory is proportional to it, not to the number of users).
        progress: Called after each chunk with the number of users just written.
        users: Only these pseudonyms (unknown ones are skipped and counted).

    Raises:
        InvalidInput: unknown extension, ``k`` or ``chunk`` below 1, or ``out`` is not in an
            existing directory.
    """
    fmt = output_format(out)
    if k < 1 or chunk < 1:
        raise InvalidInput("k and chunk must be at least 1")
    if not out.parent.is_dir() or out.is_dir():
        raise InvalidInput(f"cannot write {out}: its directory does not exist or it is one")
    start = time.perf_counter()
    selection = select_users(loaded, users)
    writer = (
        _NdjsonWriter(loaded, version_info)
        if fmt == "ndjson"
        else _ParquetWriter(loaded, k, version_info)
    )
    fd, tmp_name = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as fh:
            writer.open(fh)
            try:
                for idx, rec in _chunks(loaded, selection.idx, k, chunk):
                    writer.write(idx, rec)
                    if progress is not None:
                        progress(len(idx))
            except BaseException:
                writer.abort()
                raise
            writer.close()
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    result = BatchResult(
        len(selection.idx),
        time.perf_counter() - start,
        out,
        fmt,
        selection.removed,
        selection.unknown,
    )
    _log.info(
        "batch recommendations written",
        users=result.users,
        format=fmt,
        k=k,
        seconds=round(result.seconds, 2),
        removed=result.removed,
        unknown=result.unknown,
        model=version_info.get("name"),
        version=version_info.get("version"),
    )
    return result


def _chunks(
    loaded: LoadedModel, idx: NDArray[np.int64], k: int, chunk: int
) -> Iterator[tuple[NDArray[np.int64], Recommendations]]:
    """Recommendations chunk by chunk, the next chunk computed while the caller writes this
    one: scoring is NumPy/BLAS (it releases the GIL) and serialising is Python, so overlapping
    them keeps more cores busy. At most two chunks are in memory."""
    starts = range(0, len(idx), chunk)

    def compute(lo: int) -> Recommendations:
        return loaded.model.recommend(idx[lo : lo + chunk], k, exclude=loaded.seen)

    # The model already scores its 1024-user blocks on several threads; BLAS threads inside
    # them only oversubscribe the cores (100 k users x 20 k items ALS: 6 s instead of 9 s).
    # The limit is process-wide while it lasts, which suits a batch job.
    with (
        threadpool_limits(1, "blas"),
        ThreadPoolExecutor(1, thread_name_prefix="tastebud-batch") as pool,
    ):
        pending: Future[Recommendations] | None = None
        for n, lo in enumerate(starts):
            rec = pending.result() if pending is not None else compute(lo)
            pending = pool.submit(compute, starts[n + 1]) if n + 1 < len(starts) else None
            yield idx[lo : lo + chunk], rec


class _NdjsonWriter:
    """One JSON object per user, serialised by orjson."""

    def __init__(self, loaded: LoadedModel, version_info: Mapping[str, object]) -> None:
        # Once per run: ids as object arrays, so a chunk's lookups are one fancy-index each.
        self.user_ids = np.array(loaded.users.ids, dtype=object)
        self.item_ids = np.array(loaded.items.ids, dtype=object)
        self.model = {
            "name": version_info.get("name"),
            "version": version_info.get("version"),
            "artifact_id": version_info.get("artifact_id"),
        }
        self.fh: IO[bytes] | None = None

    def open(self, fh: IO[bytes]) -> None:
        self.fh = fh

    def write(self, idx: NDArray[np.int64], rec: Recommendations) -> None:
        assert self.fh is not None
        keys = self.user_ids[idx].tolist()
        valid = rec.item_idx >= 0
        # -1 padding is looked up as some id here and cut below (none at all: no items).
        rows = (
            self.item_ids[np.where(valid, rec.item_idx, 0)].tolist()
            if len(self.item_ids)
            else [[] for _ in keys]
        )
        scores = np.round(list_relevance(rec.scores, valid).astype(np.float64), 6).tolist()
        # Padding only ever ends a row, so a row's real items are a prefix of it.
        counts = valid.sum(axis=1).tolist()
        k = rec.item_idx.shape[1]
        model, dumps = self.model, orjson.dumps
        lines = []
        # A dict per item, serialised by orjson: 0.7 s for 100 k users x 10 items, against
        # about 13 s of CPU for scoring them (bench/batch.py), so kept plain and readable.
        for key, ids, sc, n in zip(keys, rows, scores, counts, strict=True):
            if n < k:
                ids, sc = ids[:n], sc[:n]
            items = [{"item_id": i, "score": s} for i, s in zip(ids, sc, strict=True)]
            lines.append(dumps({"user_key": key, "items": items, "model": model}))
        if lines:
            lines.append(b"")
            self.fh.write(b"\n".join(lines))

    def close(self) -> None:
        self.fh = None

    def abort(self) -> None:
        self.fh = None


def list_relevance(scores: NDArray[np.float32], valid: NDArray[np.bool_]) -> NDArray[np.float32]:
    """Each row's scores rescaled to the relevance the API reports: ``(s - min) / (max - min)``
    over the row's real items (``valid``), so 1 is the user's best item and 0 their last; a row
    whose items all score the same is all 1.

    >>> list_relevance(np.array([[3.0, 2.0, 1.0], [5.0, 5.0, 0.0]], np.float32),
    ...                np.array([[True, True, True], [True, True, False]]))
    array([[1. , 0.5, 0. ],
           [1. , 1. , 0. ]], dtype=float32)
    """
    s = np.where(valid, scores, np.nan).astype(np.float64)
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # rows with no item at all
        lo = np.nanmin(s, axis=1, keepdims=True)
        hi = np.nanmax(s, axis=1, keepdims=True)
    span = hi - lo
    out = np.where(span > 0, (s - lo) / np.where(span > 0, span, 1.0), 1.0)
    return np.where(valid, out, 0.0).astype(np.float32)


class _ParquetWriter:
    """Long format, one row group per chunk.

    A row group per chunk (8192 users x k rows by default) keeps memory bounded for any number
    of users, and is still a good row-group size for readers. Every column is built by Arrow
    ``take`` on arrays made once per run: no Python object per row.
    """

    def __init__(self, loaded: LoadedModel, k: int, version_info: Mapping[str, object]) -> None:
        import pyarrow as pa  # here, so that importing serving (the API) does not load Arrow

        self.pa = pa
        self.user_ids = pa.array(loaded.users.ids, pa.string())
        self.item_ids = pa.array(loaded.items.ids, pa.string())
        self.ranks = np.arange(1, k + 1, dtype=np.int32)
        meta = {
            b"tastebud.model": orjson.dumps(version_info, default=str),
            b"tastebud.k": str(k).encode(),
        }
        self.schema = pa.schema(
            [
                ("user_key", pa.string()),
                ("rank", pa.int32()),
                ("item_id", pa.string()),
                ("score", pa.float32()),
            ],
            metadata=meta,
        )
        self.writer: Any = None

    def open(self, fh: IO[bytes]) -> None:
        import pyarrow.parquet as pq

        self.writer = pq.ParquetWriter(fh, self.schema, compression="zstd")

    def write(self, idx: NDArray[np.int64], rec: Recommendations) -> None:
        n, k = rec.item_idx.shape
        valid = (rec.item_idx >= 0).ravel()
        users = np.repeat(idx, k)[valid]
        ranks = np.tile(self.ranks, n)[valid]
        items = rec.item_idx.ravel()[valid]
        pa = self.pa
        table = pa.Table.from_arrays(
            [
                self.user_ids.take(users),
                pa.array(ranks),
                self.item_ids.take(items),
                pa.array(list_relevance(rec.scores, rec.item_idx >= 0).ravel()[valid]),
            ],
            schema=self.schema,
        )
        self.writer.write_table(table)

    def close(self) -> None:
        # Closing writes the footer; ``fh`` itself is closed by the caller after fsync.
        self.writer.close()

    def abort(self) -> None:
        # Close before the file does (or Arrow complains when collecting the writer); the
        # temporary file is deleted anyway, so errors here do not matter.
        with contextlib.suppress(Exception):
            self.writer.close()
