"""The personalization gate: whether a user allows personalization, answered from memory on the
serving hot path and kept current by reading only the consent log's new rows.

The gate reads through a :class:`ConsentReader`: :class:`~tastebud.privacy.ConsentLog`, or a
double in tests. Every stored decision is read once, on first use; after that, at most once every
``every_s`` seconds, only the log rows appended since the last read (a change made in any process
applies in every process within a second). A serving process runs those checks in a thread of
the gate's own (:meth:`PersonalizationGate.start`), so a request never reads the database;
without it, a call that finds the last check too old makes it. An erasure deletes log rows,
which a reader of new rows cannot see: the reader notices it and the gate reads every decision
again, in the background, answering from memory meanwhile (see docs/privacy.md, "Consent in
serving").

>>> from tastebud.privacy.consent_log import ConsentMark, ConsentRead
>>> def read(decisions, last_id):
...     return ConsentRead(decisions, ConsentMark(last_id, None, (0, 0)), len(decisions))
>>> class Log:
...     def snapshot(self, purpose):
...         return read({"ann": False}, 1)
...     def since(self, purpose, mark):
...         return read({"bob": False}, 2)
>>> gate = PersonalizationGate(Log(), ConsentPolicy("opt-out"))
>>> gate("ann"), gate("bob")
(False, True)
>>> gate.refresh()
>>> gate("bob"), gate("carl")
(False, True)
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Protocol

from tastebud.background import Poller
from tastebud.monitoring import get_logger
from tastebud.privacy.consent import ConsentPolicy, Purpose
from tastebud.privacy.consent_log import ConsentMark, ConsentRead

__all__ = ["ConsentReader", "PersonalizationGate"]

_log = get_logger(__name__)

_PURPOSE: Purpose = "personalization"


class ConsentReader(Protocol):
    """Where the gate reads consent decisions (:class:`~tastebud.privacy.ConsentLog` is one)."""

    def snapshot(self, purpose: str) -> ConsentRead:
        """Every stored decision for ``purpose``, with the mark to read changes from."""
        ...

    def since(self, purpose: str, mark: ConsentMark) -> ConsentRead | None:
        """The decisions logged after ``mark``, or ``None`` when rows were deleted since (an
        erasure): then only a new snapshot is right."""
        ...


def _in_thread(work: Callable[[], None]) -> None:
    threading.Thread(target=work, name="tastebud-consent-reload", daemon=True).start()


class PersonalizationGate:
    """Whether a user allows personalization, for the serving hot path: ``gate(user_key)``.

    Answers from memory. The first call reads every stored decision; later calls, at most once
    every ``every_s`` seconds, read only the consent-log rows appended since the last read (the
    newest decision of each user wins), so a change made in any process applies in every process
    within ``every_s``. :meth:`refresh` reads them at once (a change was just recorded in this
    process). When rows were deleted (an erasure), every decision is read again, in the
    background (``background``), and the gate answers from memory until that read is in.

    Args:
        reader: The consent log (:class:`~tastebud.privacy.ConsentLog`).
        policy: What a user who never decided allows.
        every_s: How often a call checks for changes, in seconds.
        clock: Monotonic seconds (tests pass their own).
        background: Runs the full re-read after an erasure off the request path (default: a
            daemon thread; tests pass one that runs it when they say).
    """

    def __init__(
        self,
        reader: ConsentReader,
        policy: ConsentPolicy,
        *,
        every_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        background: Callable[[Callable[[], None]], None] = _in_thread,
    ) -> None:
        self.reader, self.policy, self.every_s = reader, policy, every_s
        self._clock, self._background = clock, background
        self._decisions: dict[str, bool] = {}
        self._mark: ConsentMark | None = None  # None: nothing read yet
        self._checked = float("-inf")
        self._lock = threading.Lock()  # one check at a time (full re-reads run outside it)
        self._generation = 0  # one per full re-read: only the newest one started is kept
        self._reloading = False
        self._poller = Poller(
            self._poll,
            lambda: self.every_s,
            name="tastebud-consent",
            # Keep answering from memory; the next check tries again.
            failed=lambda exc: _log.warning("consent check failed", exc_info=exc),
        )

    def start(self) -> None:
        """Check for changes every ``every_s`` in a daemon thread, so that calls never read
        the database (a serving process: the calls come from the event loop). Reads every
        decision first if nothing was read yet."""
        if self._poller.running:
            return
        if self._mark is None:
            self.refresh()
        self._poller.start()

    def stop(self) -> None:
        """Stop the background checks (calls check inline again)."""
        self._poller.stop()

    def _poll(self) -> None:
        with self._lock:
            reload = self._check()
        if reload is not None:
            self._reload_logged(reload)

    def __call__(self, user_key: str) -> bool:
        """Whether ``user_key`` allows personalization now (from memory alone once
        :meth:`start` runs the checks in the background)."""
        if not self._poller.running and self._clock() - self._checked > self.every_s:
            with self._lock:
                reload = self._check() if self._clock() - self._checked > self.every_s else None
            if reload is not None:
                self._background(lambda: self._reload_logged(reload))
        return self.policy.allows(self._decisions.get(user_key))

    def refresh(self) -> None:
        """Read the changes now (a change was just recorded in this process); after an erasure,
        read every decision again now, in this thread, rather than in the background."""
        with self._lock:
            reload = self._check()
            if reload is None and self._reloading:  # a background read started before the change
                self._generation += 1
                reload = self._generation
        if reload is not None:
            self._reload(reload)

    def _check(self) -> int | None:
        """Read what changed (the lock is held). Returns the generation of a full read to make
        outside the lock, when rows were erased."""
        started = self._clock()
        reload = None
        if self._mark is None:  # the first read: nothing to answer with before it
            batch = self.reader.snapshot(_PURPOSE)
            self._decisions, self._mark = dict(batch.decisions), batch.mark
            _log.info("consent decisions read", purpose=_PURPOSE, rows=batch.rows)
        elif not self._reloading:
            changes = self.reader.since(_PURPOSE, self._mark)
            if changes is None:  # rows were erased: the changes alone are not enough
                self._generation += 1
                self._reloading = True
                reload = self._generation
            else:
                # One dict.update: answers read the dict meanwhile, and an update with str keys
                # never lets another thread run halfway.
                self._decisions.update(changes.decisions)
                self._mark = changes.mark
        self._checked = started
        return reload

    def _reload(self, generation: int) -> None:
        """Read every decision again, without the lock: answers and checks go on meanwhile
        (checks read nothing until it is in). A newer full read supersedes an older one."""
        try:
            batch = self.reader.snapshot(_PURPOSE)
        except Exception:
            with self._lock:
                if self._generation == generation:
                    self._reloading = False  # the next check notices the erasure again
            raise
        with self._lock:
            if self._generation == generation:
                self._decisions, self._mark = dict(batch.decisions), batch.mark
                self._reloading = False
                _log.info("consent decisions read again", purpose=_PURPOSE, rows=batch.rows)

    def _reload_logged(self, generation: int) -> None:
        try:
            self._reload(generation)
        except Exception:  # keep answering from memory; the next check tries again
            _log.warning("consent re-read failed", exc_info=True)
