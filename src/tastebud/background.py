"""A daemon thread that does one piece of work every few seconds.

Every serving process keeps in-memory views current this way (the production models, the
catalogue, consent decisions, running experiments, queued impressions), so that a request never
waits on the database. :class:`Poller` is that loop, written once: start, stop, an interval read
at every turn, and a failure handed to the owner (who logs it) without ending the loop.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

__all__ = ["Poller"]


class Poller:
    """Calls ``work`` every ``every()`` seconds in a daemon thread until :meth:`stop`.

    Args:
        work: What to do at each turn.
        every: Seconds between turns (read at every turn, so the owner's setting may change).
        name: The thread's name (``tastebud-...``: seen in ``py-spy dump``).
        failed: Called with what ``work`` raised; the loop goes on (a database briefly away
            must not stop a process from serving what it holds).
        final: Run ``work`` once more after :meth:`stop` (a queue flushed on the way out).

    Example::

        >>> import time
        >>> seen = []
        >>> p = Poller(lambda: seen.append(1), lambda: 0.01, name="demo", failed=print)
        >>> p.start(); time.sleep(0.1); p.stop()
        >>> len(seen) > 1 and not p.running
        True
    """

    def __init__(
        self,
        work: Callable[[], object],
        every: Callable[[], float],
        *,
        name: str,
        failed: Callable[[Exception], None],
        final: bool = False,
    ) -> None:
        self.work, self.every, self.name, self.failed, self.final = work, every, name, failed, final
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        """Whether the thread runs (owners without one do the work inline instead)."""
        return self._thread is not None

    def start(self) -> None:
        """Start the thread (nothing if it runs already)."""
        if self._thread is None:
            # A new event per thread: a thread still finishing a slow turn after stop() (its
            # join timed out) keeps its own, set, event and ends; it never runs beside this one.
            self._stop = stop = threading.Event()
            self._thread = threading.Thread(
                target=self._run, args=(stop,), name=self.name, daemon=True
            )
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop after the current turn (waiting at most ``timeout`` seconds)."""
        thread, self._thread = self._thread, None
        if thread is not None:
            self._stop.set()
            thread.join(timeout=timeout)

    def _run(self, stop: threading.Event) -> None:
        while not stop.wait(self.every()):
            self._turn()
        if self.final:
            self._turn()

    def _turn(self) -> None:
        try:
            self.work()
        except Exception as exc:  # noqa: BLE001 - handed to the owner, who logs it
            self.failed(exc)
