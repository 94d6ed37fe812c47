"""Stopping a long foreground command on Ctrl+C (SIGINT) or SIGTERM, at any stage, in bounded
time: what ``tastebud quickstart`` (``make run``) uses.

Why it is needed: a shell without job control (a script, ``make run &``, many CI runners)
starts background commands with SIGINT *ignored*, and Python keeps an ignored SIGINT ignored,
so ``kill -INT`` did nothing while SIGTERM killed at once. :class:`Stopper` installs its own
handlers whatever was inherited. The first signal raises :class:`KeyboardInterrupt` in the main
thread, so the command unwinds and cleans up (child processes stopped, connections closed); the
C-level handler also writes to a wake-up pipe watched by a daemon thread, which ends the
process after ``grace`` seconds if the clean-up has not finished (or at once on a second
signal), even while the main thread is inside a long native call. Ending that way is safe for
the database: SQLite in WAL mode rolls back an unfinished transaction on the next open, and
everything committed (every acknowledged event) stays.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from types import FrameType, TracebackType

__all__ = ["Stopper"]

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Stopper:
    """Context manager: SIGINT and SIGTERM stop the enclosed work within ``grace`` seconds.

    Args:
        grace: Seconds the clean-up may take after the first signal before the process ends.
        farewell: Printed to stderr if the process has to be ended that way.

    Attributes:
        signum: The signal that asked to stop (``None`` while none has).
        children: Processes killed if the process has to end before its clean-up is done.
    """

    def __init__(self, grace: float = 4.0, farewell: str = "") -> None:
        self.grace = grace
        self.farewell = farewell
        self.signum: int | None = None
        self.children: list[subprocess.Popen[bytes]] = []
        self._done = threading.Event()
        self._old: dict[int, object] = {}
        self._old_fd = -1
        self._pipe: tuple[int, int] | None = None
        self._seen = signal.SIGINT

    def __enter__(self) -> Stopper:
        read, write = os.pipe()
        os.set_blocking(write, False)
        self._pipe = (read, write)
        self._old_fd = signal.set_wakeup_fd(write, warn_on_full_buffer=False)
        for sig in _SIGNALS:
            self._old[sig] = signal.signal(sig, self._handle)
        threading.Thread(
            target=self._watch, args=(read,), name="tastebud-stop", daemon=True
        ).start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.done()
        signal.set_wakeup_fd(self._old_fd)
        for sig, handler in self._old.items():
            if handler is not None:  # None: installed outside Python, nothing to restore
                signal.signal(sig, handler)  # type: ignore[arg-type]
        # The watcher blocks on the pipe's read end: leave both ends to process exit.

    @property
    def exit_code(self) -> int:
        """The shell's convention: 128 + the signal number (130 for Ctrl+C)."""
        return 128 + (self.signum or signal.SIGINT)

    def done(self) -> None:
        """The clean-up finished: the watchdog no longer ends the process."""
        self._done.set()

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        # Runs in the main thread between bytecodes; a second signal is the watcher's job.
        if self.signum is None:
            self.signum = signum
            raise KeyboardInterrupt

    def _watch(self, read: int) -> None:
        first: float | None = None
        while True:
            try:
                data = os.read(read, 64)
            except OSError:
                return
            if not data:
                return
            received = [b for b in data if b in (signal.SIGINT, signal.SIGTERM)]
            if not received:
                continue
            self._seen = signal.Signals(received[0])
            if first is not None:  # a second signal: leave now
                self._force()
            first = time.monotonic()
            threading.Thread(
                target=self._deadline, name="tastebud-stop-deadline", daemon=True
            ).start()

    def _deadline(self) -> None:
        if not self._done.wait(self.grace):
            self._force()

    def _force(self) -> None:
        if self._done.is_set():
            return
        for child in self.children:
            try:
                child.kill()
            except OSError:
                pass
        if self.farewell:
            try:
                sys.stderr.write(f"\n{self.farewell}\n")
                sys.stderr.flush()
            except OSError:
                pass
        os._exit(128 + (self.signum or self._seen))
