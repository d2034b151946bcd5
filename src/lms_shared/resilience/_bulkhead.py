"""The bulkhead: a concurrency limit per dependency, with a bounded wait queue.

A slow dependency must not take every task of the service with it: the
bulkhead lets ``max_concurrent_calls`` calls in at once; the next ones
wait in a queue of at most ``max_queued_calls`` for at most
``max_wait_duration`` seconds (Resilience4j's semaphore bulkhead knob;
0, its default, means do not wait at all), and are otherwise rejected
with :class:`~lms_shared.resilience.BulkheadFull` at once.

A freed slot goes to the oldest waiter (first come, first served; a new
call never overtakes the queue). Waiting is timed on the injected clock.

Written by hand: :class:`asyncio.Semaphore` has no queue bound, no wait
limit on the injected clock and no fairness guarantee for newcomers.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import TypeVar

from lms_shared.clock import Clock
from lms_shared.resilience._errors import BulkheadFull
from lms_shared.resilience._timeouts import call_with_timeout

__all__ = ["Bulkhead", "BulkheadMetrics"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class BulkheadMetrics:
    """A snapshot of a :class:`Bulkhead`.

    Attributes:
        name: the bulkhead's name.
        active_calls: calls holding a slot.
        queued_calls: calls waiting for one.
        available_slots: free slots (``max_concurrent_calls - active_calls``).
        rejected_calls: calls rejected since the bulkhead was made.
    """

    name: str
    active_calls: int
    queued_calls: int
    available_slots: int
    rejected_calls: int


class Bulkhead:
    """At most ``max_concurrent_calls`` calls at once to one dependency.

    Use ``async with bulkhead:`` or ``await bulkhead.call(fn)``.

    Args:
        name: names the bulkhead in errors and metrics.
        clock: the service clock (queue waits).
        max_concurrent_calls: slots.
        max_queued_calls: calls that may wait for a slot.
        max_wait_duration: seconds a call may wait; 0 rejects at once when full.

    Raises:
        ValueError: fewer than one slot, a negative queue or wait.
    """

    def __init__(
        self,
        name: str,
        *,
        clock: Clock,
        max_concurrent_calls: int = 25,
        max_queued_calls: int = 100,
        max_wait_duration: float = 0.0,
    ) -> None:
        if max_concurrent_calls < 1:
            raise ValueError(f"max_concurrent_calls must be >= 1, got {max_concurrent_calls}")
        if max_queued_calls < 0:
            raise ValueError(f"max_queued_calls must be >= 0, got {max_queued_calls}")
        if not max_wait_duration >= 0:
            raise ValueError(f"max_wait_duration must be >= 0 seconds, got {max_wait_duration}")
        self.name = name
        self.clock = clock
        self.max_concurrent_calls = max_concurrent_calls
        self.max_queued_calls = max_queued_calls
        self.max_wait_duration = max_wait_duration
        self._active = 0
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._rejected = 0

    def __repr__(self) -> str:
        return (
            f"Bulkhead({self.name!r}, active={self._active}/{self.max_concurrent_calls}, "
            f"queued={len(self._waiters)})"
        )

    def _full(self) -> BulkheadFull:
        self._rejected += 1
        return BulkheadFull(self.name, self.max_concurrent_calls)

    async def acquire(self) -> None:
        """Take a slot, waiting in the queue if allowed.

        Raises:
            BulkheadFull: no slot, and no queue place or the wait ran out.
        """
        if self._active < self.max_concurrent_calls and not self._waiters:
            self._active += 1
            return
        if self.max_wait_duration <= 0 or len(self._waiters) >= self.max_queued_calls:
            raise self._full()
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await call_with_timeout(
                lambda: waiter,
                self.max_wait_duration,
                clock=self.clock,
                exception=lambda _: self._full(),
            )
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                self.release()  # the slot was handed over as we gave up: pass it on
            else:
                waiter.cancel()
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
            raise

    def release(self) -> None:
        """Give a slot back (to the oldest waiter, if any)."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the slot changes hands; _active is unchanged
                return
        self._active -= 1

    async def __aenter__(self) -> None:
        await self.acquire()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()

    async def call(self, fn: Callable[[], Awaitable[T]]) -> T:
        """Await ``fn()`` holding a slot.

        Raises:
            BulkheadFull: no slot could be had.
        """
        await self.acquire()
        try:
            return await fn()
        finally:
            self.release()

    def metrics(self) -> BulkheadMetrics:
        """Slots in use, waiters and rejections."""
        return BulkheadMetrics(
            name=self.name,
            active_calls=self._active,
            queued_calls=sum(1 for w in self._waiters if not w.done()),
            available_slots=self.max_concurrent_calls - self._active,
            rejected_calls=self._rejected,
        )
