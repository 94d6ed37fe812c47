"""Group commit: concurrent writers in one process share one transaction.

Each caller queues its rows; whoever gets the write lock (the leader) takes everything queued so
far and writes it in one transaction, then wakes the others with their results. One commit (one
fsync on SQLite with ``synchronous=FULL``) then serves many requests, and threads of one
process never spin on SQLite's busy handler against each other. A caller returns only after
the transaction holding its rows has committed (or raises its error), so an acknowledged event
is a committed event.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

__all__ = ["GroupCommit"]

T = TypeVar("T")
R = TypeVar("R")


class _Slot(Generic[T, R]):
    __slots__ = ("done", "error", "payload", "result")

    def __init__(self, payload: T) -> None:
        self.payload = payload
        self.done = False
        self.result: R | None = None
        self.error: BaseException | None = None


class GroupCommit(Generic[T, R]):
    """Runs ``write(payloads) -> results`` for batches of concurrent calls.

    Args:
        write: Writes every payload in one transaction; returns one result per payload, in
            order.
        max_group: Most payloads written together.
    """

    def __init__(self, write: Callable[[Sequence[T]], list[R]], *, max_group: int = 64) -> None:
        self._write = write
        self._max_group = max_group
        self._queue: list[_Slot[T, R]] = []
        self._queue_lock = threading.Lock()
        self._write_lock = threading.Lock()

    def submit(self, payload: T) -> R:
        """Queue ``payload``, wait until it is committed, and return its result."""
        slot: _Slot[T, R] = _Slot(payload)
        with self._queue_lock:
            self._queue.append(slot)
        while True:
            with self._write_lock:
                if slot.done:
                    break
                with self._queue_lock:
                    group = self._queue[: self._max_group]
                    del self._queue[: self._max_group]
                self._run(group)
                if slot.done:
                    break
        if slot.error is not None:
            raise slot.error
        return slot.result  # type: ignore[return-value]

    def _run(self, group: list[_Slot[T, R]]) -> None:
        try:
            results = self._write([s.payload for s in group])
        except BaseException as exc:  # every waiter gets the error, nobody a false success
            for s in group:
                s.error, s.done = exc, True
            return
        for s, r in zip(group, results, strict=True):
            s.result, s.done = r, True

    def __repr__(self) -> str:
        return f"GroupCommit(max_group={self._max_group})"
