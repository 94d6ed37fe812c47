"""Fingerprints of a training run's inputs: what the registry compares so that training again on
the same data with the same configuration registers no identical new version.

A fingerprint is a sha256 over the run's settings (job, model, seed, tuning, code version...) and
the content of its input frames (interactions, user attributes, catalogue, labels and features),
independent of row order: each row is serialized on its own and the sorted rows are hashed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

import polars as pl

__all__ = ["fingerprint", "frame_digest"]


def frame_digest(frame: pl.DataFrame) -> str:
    """A digest of ``frame``'s columns and rows, whatever the order of either.

    >>> a = pl.DataFrame({"u": ["x", "y"], "n": [1, 2], "l": [["a"], []]})
    >>> frame_digest(a) == frame_digest(a.reverse().select("n", "l", "u"))
    True
    >>> frame_digest(a) == frame_digest(a.with_columns(n=pl.Series([1, 3])))
    False
    """
    columns = sorted(frame.columns)
    h = hashlib.sha256(json.dumps([[c, str(frame.schema[c])] for c in columns]).encode())
    if frame.height:
        # One JSON object per row (nested values included), sorted: order-independent.
        for line in sorted(frame.select(columns).write_ndjson().splitlines()):
            h.update(line.encode("utf-8"))
            h.update(b"\n")
    return h.hexdigest()


def fingerprint(settings: Mapping[str, Any], frames: Mapping[str, pl.DataFrame]) -> str:
    """The fingerprint of a training run: its ``settings`` (JSON-serializable) and the digests
    of its input ``frames`` (by name).

    >>> f = pl.DataFrame({"u": ["x"]})
    >>> fingerprint({"seed": 0}, {"pairs": f}) == fingerprint({"seed": 0}, {"pairs": f})
    True
    >>> fingerprint({"seed": 0}, {"pairs": f}) == fingerprint({"seed": 1}, {"pairs": f})
    False
    """
    h = hashlib.sha256(json.dumps(dict(settings), sort_keys=True, default=str).encode())
    for name in sorted(frames):
        h.update(f"\x00{name}\x00{frame_digest(frames[name])}".encode())
    return h.hexdigest()[:32]
