"""The breaker's sliding windows: the last N calls, or the calls of the last N seconds.

Both keep running totals so that recording a call and reading the rates
cost the same whatever the window's size (Resilience4j's
``FixedSizeSlidingWindowMetrics`` and ``SlidingTimeWindowMetrics`` do the
same):

* :class:`CountWindow`: a ring of the last ``size`` outcomes; the oldest
  outcome leaves the totals when a new one takes its place;
* :class:`TimeWindow`: ``size`` one-second buckets on the monotonic clock;
  a bucket leaves the totals once it is ``size`` seconds old, on the next
  record *or read*, so the rates of an idle window decay too.

An outcome is two bits: ``FAILED`` and ``SLOW``.
"""

from __future__ import annotations

import math

__all__ = ["FAILED", "SLOW", "CountWindow", "TimeWindow", "Window"]

FAILED = 1
SLOW = 2


class CountWindow:
    """The outcomes of the last ``size`` calls."""

    __slots__ = ("_index", "_ring", "failed", "size", "slow", "slow_failed", "total")

    def __init__(self, size: int) -> None:
        self.size = size
        self._ring = [-1] * size  # -1: empty slot
        self._index = 0
        self.total = self.failed = self.slow = self.slow_failed = 0

    def record(self, outcome: int, now: float) -> None:
        """Add one call's outcome (``now`` is unused: the window counts calls)."""
        ring, index = self._ring, self._index
        old = ring[index]
        if old < 0:
            self.total += 1
        elif old:
            self.failed -= old & FAILED
            self.slow -= old >> 1
            if old == FAILED | SLOW:
                self.slow_failed -= 1
        if outcome:
            self.failed += outcome & FAILED
            self.slow += outcome >> 1
            if outcome == FAILED | SLOW:
                self.slow_failed += 1
        ring[index] = outcome
        index += 1
        self._index = 0 if index == self.size else index

    def refresh(self, now: float) -> None:
        """Nothing to expire in a count-based window."""


class TimeWindow:
    """The outcomes of the calls of the last ``size`` seconds, per second."""

    __slots__ = (
        "_fails",
        "_head",
        "_slow_fails",
        "_slows",
        "_totals",
        "failed",
        "size",
        "slow",
        "slow_failed",
        "total",
    )

    def __init__(self, size: int, now: float) -> None:
        self.size = size
        self._totals = [0] * size
        self._fails = [0] * size
        self._slows = [0] * size
        self._slow_fails = [0] * size
        self._head = math.floor(now)
        self.total = self.failed = self.slow = self.slow_failed = 0

    def refresh(self, now: float) -> None:
        """Drop the buckets that are ``size`` seconds old or older."""
        second = math.floor(now)
        head = self._head
        if second <= head:
            return
        span = min(second - head, self.size)
        for tick in range(second - span + 1, second + 1):
            slot = tick % self.size
            self.total -= self._totals[slot]
            self.failed -= self._fails[slot]
            self.slow -= self._slows[slot]
            self.slow_failed -= self._slow_fails[slot]
            self._totals[slot] = self._fails[slot] = 0
            self._slows[slot] = self._slow_fails[slot] = 0
        self._head = second

    def record(self, outcome: int, now: float) -> None:
        """Add one call's outcome in the bucket of ``now``."""
        second = math.floor(now)
        if second != self._head:
            self.refresh(now)
        slot = second % self.size
        self._totals[slot] += 1
        self.total += 1
        if outcome:
            failed = outcome & FAILED
            slow = outcome >> 1
            self._fails[slot] += failed
            self.failed += failed
            self._slows[slot] += slow
            self.slow += slow
            if outcome == FAILED | SLOW:
                self._slow_fails[slot] += 1
                self.slow_failed += 1


Window = CountWindow | TimeWindow
