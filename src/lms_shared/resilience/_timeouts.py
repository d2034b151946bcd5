"""Timeouts per attempt and deadlines in total, on the injected clock.

:func:`call_with_timeout` runs a call in the *current* task (its
contextvars, its cancellation) and cancels it when the timeout fires,
raising :class:`~lms_shared.resilience.AttemptTimeout` (or the error the
caller names) instead of :class:`asyncio.CancelledError`.

``asyncio.timeout`` alone would not do: it schedules on the event loop's
own clock, which a :class:`~lms_shared.testing.ManualClock` does not move,
so tests would have to really wait. For any clock other than
:class:`~lms_shared.clock.SystemClock` a watchdog task awaits
``clock.sleep(timeout)`` and then cancels the caller, which is what
``asyncio.timeout`` does internally (including ``Task.uncancel`` so that
a cancellation from outside is never mistaken for ours). With the real
clock ``asyncio.timeout`` is used as is: the same semantics, one timer
handle instead of a task.

A :class:`Deadline` is the total budget of a call across its attempts:
retries read :meth:`Deadline.remaining` so they never sleep past it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from lms_shared.clock import Clock, SystemClock
from lms_shared.resilience._errors import AttemptTimeout, DeadlineExceeded

__all__ = ["Deadline", "call_with_timeout", "sleep_until"]

T = TypeVar("T")


class Deadline:
    """A point in (monotonic) time by which a whole call must be done.

    Args:
        seconds: the budget from now.
        clock: the service clock.

    Raises:
        ValueError: ``seconds`` is negative.
    """

    __slots__ = ("clock", "expires_at", "seconds")

    def __init__(self, seconds: float, *, clock: Clock) -> None:
        if not seconds >= 0:
            raise ValueError(f"a deadline needs seconds >= 0, got {seconds}")
        self.clock = clock
        self.seconds = seconds
        self.expires_at = clock.monotonic() + seconds

    def __repr__(self) -> str:
        return f"Deadline({self.seconds}s, remaining={self.remaining():.3f}s)"

    def remaining(self) -> float:
        """Seconds left, never negative."""
        return max(0.0, self.expires_at - self.clock.monotonic())

    @property
    def expired(self) -> bool:
        """Whether no time is left."""
        return self.clock.monotonic() >= self.expires_at

    def check(self) -> None:
        """Raise :class:`DeadlineExceeded` when no time is left."""
        if self.expired:
            raise DeadlineExceeded(self.seconds)


async def sleep_until(clock: Clock, due: float) -> None:
    """Sleep until ``clock.monotonic()`` reaches ``due``.

    For timers started as tasks: the time is measured from when the timer
    was *made*, not from when its task first runs (a manual clock may
    have been advanced in between).
    """
    while (left := due - clock.monotonic()) > 0:
        await clock.sleep(left)


async def call_with_timeout(
    fn: Callable[[], Awaitable[T]],
    timeout: float,
    *,
    clock: Clock,
    exception: Callable[[float], BaseException] = AttemptTimeout,
) -> T:
    """Await ``fn()``, cancelling it after ``timeout`` seconds of ``clock`` time.

    Args:
        fn: makes the awaitable to run (called once).
        timeout: seconds; 0 or less fails at once without calling ``fn``.
        clock: the service clock.
        exception: builds the error raised on timeout from ``timeout``
            (:class:`AttemptTimeout` by default).

    Raises:
        AttemptTimeout: (or the given ``exception``) the timeout fired.
        asyncio.CancelledError: the caller was cancelled from outside.
    """
    if timeout <= 0:
        raise exception(timeout)
    if type(clock) is SystemClock:
        scope = asyncio.timeout(timeout)
        try:
            async with scope:
                return await fn()
        except TimeoutError:
            if scope.expired():
                raise exception(timeout) from None
            raise
    return await _watched(fn, timeout, clock, exception)


async def _watched(
    fn: Callable[[], Awaitable[T]],
    timeout: float,
    clock: Clock,
    exception: Callable[[float], BaseException],
) -> T:
    task = asyncio.current_task()
    if task is None:  # only outside a task (a bare coroutine driven by hand)
        raise RuntimeError("call_with_timeout must run inside an asyncio task")
    fired = False
    due = clock.monotonic() + timeout

    async def watchdog() -> None:
        nonlocal fired
        await sleep_until(clock, due)
        fired = True
        task.cancel()

    dog = asyncio.get_running_loop().create_task(watchdog())
    try:
        return await fn()
    except asyncio.CancelledError:
        if fired:
            fired = False  # our cancel request is withdrawn exactly once
            if task.uncancel() == 0:
                raise exception(timeout) from None
        raise
    finally:
        dog.cancel()
        if fired:  # fn swallowed our cancellation: withdraw the request all the same
            task.uncancel()
