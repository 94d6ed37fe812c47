"""What privacy keeps on record besides consent and tombstones: the privacy log (counts of
exports, erasures, retention runs and key rotations: the transparency report's source) and the
precomputed list files an erasure must rewrite."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import update

from tastebud.store import Store
from tastebud.store import tables as t

__all__ = ["BatchOutputs", "PrivacyLog"]


class PrivacyLog:
    """The privacy log (``privacy_log``): one row per export, erasure, retention run or key
    rotation, with counts and no personal data.

    Args:
        store: The database.
    """

    def __init__(self, store: Store) -> None:
        self.store = store

    def __repr__(self) -> str:
        return f"PrivacyLog({self.store!r})"

    def record(self, kind: str, count: int, details: Mapping[str, Any], at_ms: int) -> None:
        """Append one entry.

        Args:
            kind: ``export``, ``erasure``, ``retention`` or ``rotation``.
            count: Rows concerned (1 for an export).
            details: Counts and ids only (a request id, deletions per event type).
            at_ms: When, in ms since the epoch.
        """
        row = {"kind": kind, "count": count, "details": dict(details), "at_ms": at_ms}
        with self.store.engine.begin() as conn:
            conn.execute(t.privacy_log.insert().values(**row))


class BatchOutputs:
    """Precomputed list files (``batch_outputs``: paths, not user data): an erasure rewrites
    each without the erased user.

    Args:
        store: The database.
    """

    def __init__(self, store: Store) -> None:
        self.store = store

    def __repr__(self) -> str:
        return f"BatchOutputs({self.store!r})"

    def register(self, path: str, fmt: str, model: str, version: int, now_ms: int) -> None:
        """Remember a list file (registering a path again updates its entry).

        Args:
            path: The file, absolute.
            fmt: ``parquet`` or ``jsonl``.
            model: The model name the lists came from.
            version: Its version.
            now_ms: When the file was written.
        """
        row = {"format": fmt, "model": model, "version": version, "created_ms": now_ms}
        with self.store.engine.begin() as conn:
            q = update(t.batch_outputs).where(t.batch_outputs.c.path == path)
            if not conn.execute(q.values(**row)).rowcount:
                conn.execute(t.batch_outputs.insert().values(path=path, **row))
