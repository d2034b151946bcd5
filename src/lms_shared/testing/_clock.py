"""A clock the test drives: time moves only when ``advance`` says so."""

from __future__ import annotations

import asyncio
import heapq
import itertools
from datetime import UTC, datetime, timedelta

__all__ = ["ManualClock"]


class ManualClock:
    """A :class:`~lms_shared.clock.Clock` whose time moves only on :meth:`advance`.

    ``await clock.sleep(5)`` returns once the test has advanced the clock by
    at least five seconds, so retry, expiry and backoff logic is tested
    without real waiting (and without freezing the event loop's own clock,
    which freezegun-style tools do and which hangs asyncio).

    Attributes:
        slept: the seconds of every :meth:`sleep` call, in order.

    Args:
        start: the initial wall time (timezone-aware); 2026-01-01 UTC by default.
        auto_advance: every :meth:`sleep` moves the clock forward by its own
            delay and returns at once (for code whose sleeps no test drives,
            such as retry backoff); the delays are still in :attr:`slept`.
    """

    def __init__(self, start: datetime | None = None, *, auto_advance: bool = False) -> None:
        start = start or datetime(2026, 1, 1, tzinfo=UTC)
        if start.tzinfo is None:
            raise ValueError("ManualClock needs a timezone-aware start time")
        self._wall = start
        self._mono = 0.0
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()
        self.slept: list[float] = []
        self.auto_advance = auto_advance

    def now(self) -> datetime:
        """The clock's current wall time."""
        return self._wall

    def monotonic(self) -> float:
        """Seconds advanced since the clock was made."""
        return self._mono

    async def sleep(self, seconds: float) -> None:
        """Wait until the clock has been advanced past ``seconds`` from now.

        Every call is recorded in :attr:`slept` (the requested seconds, in
        order), so a test can assert on the backoff a component chose.
        """
        self.slept.append(seconds)
        if self.auto_advance:
            # time jumps to the sleeper's deadline at once: backoff loops run
            # without a driver, and the recorded delays are still asserted on
            self._jump(max(seconds, 0.0))
            await asyncio.sleep(0)
            return
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._mono + seconds, next(self._seq), future))
        await future

    @property
    def sleepers(self) -> int:
        """How many tasks are waiting in :meth:`sleep`."""
        return sum(1 for _, _, f in self._sleepers if not f.done())

    async def advance(self, seconds: float) -> None:
        """Move time forward and let every sleeper that is now due run.

        Raises:
            ValueError: ``seconds`` is negative (time never goes back).
        """
        if seconds < 0:
            raise ValueError("a clock cannot go backwards")
        self._jump(seconds)
        # give the woken tasks a chance to run before the test goes on
        for _ in range(3):
            await asyncio.sleep(0)

    def _jump(self, seconds: float) -> None:
        self._mono += seconds
        self._wall += timedelta(seconds=seconds)
        while self._sleepers and self._sleepers[0][0] <= self._mono:
            _, _, future = heapq.heappop(self._sleepers)
            if not future.done():
                future.set_result(None)
