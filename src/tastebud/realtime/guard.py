"""The real-time store on the request paths: every call under a time budget (issue 16, point 1).

A Redis that accepts connections and never answers must not hold up a request, let alone the
event loop every other request of the process (``/healthz`` included) is waiting on. The
:class:`RealtimeGuard` runs the calls of a network backend on a small pool of its own threads
and waits for them at most ``budget_s`` (``ServingConfig.realtime_budget_ms``, 50 ms), from a
coroutine without blocking the event loop (:meth:`RealtimeGuard.read_async`) or from a worker
thread (:meth:`RealtimeGuard.read`, :meth:`RealtimeGuard.update`). What does not answer in time
is served degraded (a read) or acknowledged without waiting (an update).

The store is then *stalled* as long as a call that overran its budget has not come back, and
*resting* for ``retry_s`` after a call failed: meanwhile nothing is sent to it, so an outage
costs one budget, not one per request, and threads never pile up behind a hung connection. An
in-process backend (``memory://``) never waits on a network and is called directly, as before.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any, TypeVar

from tastebud.errors import ServiceUnavailable
from tastebud.monitoring import get_logger
from tastebud.monitoring.metrics import UpdateOutcome, record_realtime_update
from tastebud.realtime.base import RealtimeConfig, RealtimeState, Update, UserState

__all__ = ["RealtimeGuard", "StateRead"]

_log = get_logger(__name__)
_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class StateRead:
    """A user's real-time state as one request sees it."""

    state: UserState
    degraded: bool
    """The store did not answer within the budget (or is stalled or resting): ``state`` is
    empty and the answer is served from the model alone."""


def _empty() -> UserState:
    return UserState([], {}, {}, [], None)


class _Late(Exception):
    """A call overran its budget; it goes on in the background."""


class _LoopRead:
    """A state read for a coroutine: run by one of the guard's reader threads, answered on the
    event loop. (Lighter than a ``ThreadPoolExecutor`` with ``asyncio.wrap_future`` and
    ``asyncio.wait_for``: one queue put there, one ``call_soon_threadsafe`` back, about 50 µs
    less CPU a request.)"""

    __slots__ = ("future", "late", "loop", "settled", "user_key")

    def __init__(self, loop: asyncio.AbstractEventLoop, user_key: str) -> None:
        self.loop = loop
        self.future: asyncio.Future[UserState] = loop.create_future()
        self.user_key = user_key
        self.late = False
        """The request stopped waiting (budget spent, or cancelled)."""
        self.settled = False


class RealtimeGuard:
    """A real-time backend whose request-path calls never wait longer than ``budget_s``.

    It is a :class:`~tastebud.realtime.RealtimeState` itself: :meth:`get`, :meth:`apply` and
    :meth:`set_feedback` are budgeted (``get`` and ``set_feedback`` raise
    :class:`~tastebud.errors.ServiceUnavailable` when the store does not answer in time);
    :meth:`set_features`, :meth:`forget`, :meth:`ping` and :meth:`close` are bulk or
    administrative calls passed straight to the backend.

    Args:
        backend: The store (``memory://`` or ``redis://``).
        budget_s: Longest a call is waited for.
        retry_s: After a failure, how long nothing is sent to the store.
        workers: Threads for the calls of a network backend: as many for reads from the event
            loop, as many for the other calls.
        clock: Monotonic seconds (tests pass a fake clock).
    """

    def __init__(
        self,
        backend: RealtimeState,
        *,
        budget_s: float = 0.05,
        retry_s: float = 5.0,
        workers: int = 4,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.backend = backend
        self.config: RealtimeConfig = backend.config
        self.in_process: bool = backend.in_process
        self.budget_s = budget_s
        self.retry_s = retry_s
        self._workers = workers
        self._clock = clock
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self._reads: queue.SimpleQueue[_LoopRead | None] | None = None
        self._late: set[object] = set()
        self._resting_until = float("-inf")

    def __repr__(self) -> str:
        return f"RealtimeGuard({self.backend!r}, budget_s={self.budget_s})"

    # -- health -------------------------------------------------------------------------------
    @property
    def stalled(self) -> bool:
        """A call overran its budget and has not come back yet."""
        return bool(self._late)

    @property
    def resting(self) -> bool:
        """A call failed less than ``retry_s`` ago."""
        return self._clock() < self._resting_until

    def available(self) -> bool:
        """Whether calls are sent to the store now (neither stalled nor resting)."""
        return not self._late and self._clock() >= self._resting_until

    def _failed(self, exc: BaseException) -> None:
        self._resting_until = self._clock() + self.retry_s
        # The type only: a message may spell out the URL, password included.
        _log.warning(
            "real-time store unavailable; serving without session signals",
            error_type=type(exc).__name__,
            retry_s=self.retry_s,
        )

    def _overran(self, fut: Future[Any], done: Callable[[Future[Any]], None] | None) -> None:
        """Track a call that overran its budget until it comes back."""
        with self._lock:
            self._late.add(fut)
        fut.add_done_callback(self._came_back)
        if done is not None:
            fut.add_done_callback(done)

    def _came_back(self, fut: Future[Any]) -> None:
        with self._lock:
            self._late.discard(fut)
        if not fut.cancelled() and (exc := fut.exception()) is not None:
            self._failed(exc)

    # -- running calls ------------------------------------------------------------------------
    def _submit(self, fn: Callable[..., _T], *args: Any) -> Future[_T]:
        pool = self._pool
        if pool is None:
            with self._lock:
                if self._pool is None:
                    self._pool = ThreadPoolExecutor(
                        self._workers, thread_name_prefix="tastebud-realtime"
                    )
                pool = self._pool
        return pool.submit(fn, *args)

    def _wait(self, fut: Future[_T]) -> _T:
        """The call's result within the budget; raises :class:`_Late` if it overran (it goes
        on), or the backend's own error."""
        try:
            return fut.result(self.budget_s)
        except FutureTimeout:
            if fut.done():  # finished meanwhile, or the backend raised a TimeoutError itself
                return fut.result()
            raise _Late from None

    # -- reads --------------------------------------------------------------------------------
    def read(self, user_key: str) -> StateRead:
        """The user's state, waited for at most the budget (from a worker thread)."""
        if not self.available():
            return StateRead(_empty(), True)
        if self.backend.in_process:
            return self._direct(user_key)
        fut = self._submit(self.backend.get, user_key)
        try:
            return StateRead(self._wait(fut), False)
        except _Late:
            self._overran(fut, None)
        except Exception as exc:  # any backend failure: serve from the model alone
            self._failed(exc)
        return StateRead(_empty(), True)

    async def read_async(self, user_key: str) -> StateRead:
        """The user's state, awaited at most the budget: the event loop serves other requests
        meanwhile."""
        if not self.available():
            return StateRead(_empty(), True)
        if self.backend.in_process:
            return self._direct(user_key)
        loop = asyncio.get_running_loop()
        call = _LoopRead(loop, user_key)
        self._read_queue().put(call)
        timer = loop.call_later(self.budget_s, self._expire, call)
        try:
            return StateRead(await call.future, False)
        except _Late:
            return StateRead(_empty(), True)
        except Exception as exc:  # any backend failure: serve from the model alone
            self._failed(exc)
            return StateRead(_empty(), True)
        except BaseException:  # cancelled: the read may still be running
            if not call.settled:
                self._give_up(call)
            raise
        finally:
            timer.cancel()

    def _read_queue(self) -> queue.SimpleQueue[_LoopRead | None]:
        reads = self._reads
        if reads is None:
            with self._lock:
                if self._reads is None:
                    self._reads = queue.SimpleQueue()
                    for n in range(self._workers):
                        threading.Thread(
                            target=self._read_loop,
                            args=(self._reads,),
                            name=f"tastebud-realtime-read-{n}",
                            daemon=True,  # one hung on a dead connection must not hold an exit
                        ).start()
                reads = self._reads
        return reads

    def _read_loop(self, reads: queue.SimpleQueue[_LoopRead | None]) -> None:
        """A reader thread: runs the coroutines' reads, answers on their event loops."""
        while (call := reads.get()) is not None:
            if call.late:  # the request stopped waiting before the read started: skip it
                self._back_late(call, None)
                continue
            state: UserState | None = None
            error: Exception | None = None
            try:
                state = self.backend.get(call.user_key)
            except Exception as exc:
                error = exc
            try:
                call.loop.call_soon_threadsafe(self._settle, call, state, error)
            except RuntimeError:  # the loop is closed: nobody waits any more
                self._back_late(call, error)

    def _expire(self, call: _LoopRead) -> None:
        """On the event loop, when the budget is spent."""
        if not call.settled:
            self._give_up(call)
            call.future.set_exception(_Late())

    def _give_up(self, call: _LoopRead) -> None:
        call.late = True
        with self._lock:
            self._late.add(call)

    def _settle(self, call: _LoopRead, state: UserState | None, error: Exception | None) -> None:
        """On the event loop, when the read came back."""
        call.settled = True
        if call.late:
            self._back_late(call, error)
        elif error is not None:
            call.future.set_exception(error)
        else:
            assert state is not None
            call.future.set_result(state)

    def _back_late(self, call: _LoopRead, error: Exception | None) -> None:
        with self._lock:
            self._late.discard(call)
        if error is not None:
            self._failed(error)

    def _direct(self, user_key: str) -> StateRead:
        try:
            return StateRead(self.backend.get(user_key), False)
        except Exception as exc:
            self._failed(exc)
            return StateRead(_empty(), True)

    def get(self, user_key: str) -> UserState:
        """One user's state within the budget.

        Raises:
            ServiceUnavailable: the store did not answer in time (or is stalled or resting).
        """
        read = self.read(user_key)
        if read.degraded:
            raise ServiceUnavailable("the real-time store did not answer in time")
        return read.state

    # -- updates ------------------------------------------------------------------------------
    def update(
        self, updates: Mapping[str, Update], on_applied: Callable[[], None] | None = None
    ) -> UpdateOutcome:
        """Apply a batch's updates, waiting at most the budget (from a worker thread).

        Each batch is counted once in ``tastebud_realtime_updates_total``: ``applied`` in time,
        ``late`` (it finished after the caller went on), or ``dropped`` (the store failed, or was
        stalled or resting: nothing is sent). Updates are never retried: one that overran may
        still have been applied, and counters must not count twice.

        Args:
            updates: Per-user updates.
            on_applied: Called once the update is applied, in time or late (in whichever
                thread finished it).

        Returns:
            The outcome as the caller leaves: ``applied``, ``late`` (still running; counted
            ``late`` or ``dropped`` when it comes back) or ``dropped``.
        """
        if not updates:  # nothing to send (a batch of passive events): applied as it is
            return self._applied(UpdateOutcome.APPLIED, on_applied)
        if not self.available():
            record_realtime_update(UpdateOutcome.DROPPED)
            return UpdateOutcome.DROPPED
        if self.backend.in_process:
            try:
                self.backend.apply(updates)
            except Exception as exc:
                self._failed(exc)
                record_realtime_update(UpdateOutcome.DROPPED)
                return UpdateOutcome.DROPPED
            return self._applied(UpdateOutcome.APPLIED, on_applied)
        fut = self._submit(self.backend.apply, updates)
        try:
            self._wait(fut)
        except _Late:

            def done(f: Future[Any]) -> None:
                if f.cancelled() or f.exception() is not None:
                    record_realtime_update(UpdateOutcome.DROPPED)
                else:
                    self._applied(UpdateOutcome.LATE, on_applied)

            self._overran(fut, done)
            return UpdateOutcome.LATE
        except Exception as exc:
            self._failed(exc)
            record_realtime_update(UpdateOutcome.DROPPED)
            return UpdateOutcome.DROPPED
        return self._applied(UpdateOutcome.APPLIED, on_applied)

    @staticmethod
    def _applied(outcome: UpdateOutcome, on_applied: Callable[[], None] | None) -> UpdateOutcome:
        record_realtime_update(outcome)
        if on_applied is not None:
            on_applied()
        return outcome

    def apply(self, updates: Mapping[str, Update]) -> None:
        """:meth:`update`, for callers of the :class:`~tastebud.realtime.RealtimeState`
        protocol (the outcome is counted, never raised)."""
        self.update(updates)

    def set_feedback(self, user_key: str, item_id: str, kind: str) -> None:
        """Record explicit feedback within the budget.

        Raises:
            ServiceUnavailable: not done in time (a call that overran still finishes).
        """
        if not self.available():
            raise ServiceUnavailable("the real-time store is unavailable")
        if self.backend.in_process:
            self.backend.set_feedback(user_key, item_id, kind)
            return
        fut = self._submit(self.backend.set_feedback, user_key, item_id, kind)
        try:
            self._wait(fut)
        except _Late:
            self._overran(fut, None)
            raise ServiceUnavailable("the real-time store did not answer in time") from None
        except Exception as exc:
            self._failed(exc)
            raise ServiceUnavailable("the real-time store is unavailable") from None

    # -- passed through -----------------------------------------------------------------------
    def set_features(self, features: Mapping[str, Mapping[str, Any]]) -> None:
        """Store many users' feature values (a bulk call: not budgeted)."""
        self.backend.set_features(features)

    def forget(self, user_key: str) -> None:
        """Remove everything held about a user (erasure: not budgeted, never skipped)."""
        self.backend.forget(user_key)

    def ping(self) -> bool:
        """Whether the backend answers."""
        return self.backend.ping()

    def close(self) -> None:
        """Stop the pool (a call still hung on the network is abandoned) and close the
        backend."""
        with self._lock:
            pool, self._pool = self._pool, None
            reads, self._reads = self._reads, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
        if reads is not None:
            for _ in range(self._workers):
                reads.put(None)
        self.backend.close()
