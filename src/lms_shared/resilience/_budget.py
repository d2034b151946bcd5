"""The retry budget: retries capped at a share of recent traffic.

A retry storm is what turns one slow dependency into an outage: every
caller multiplies its load by its attempt count exactly when the callee
can least take it. The budget (Finagle's ``RetryBudget``, Envoy's retry
budgets) bounds retries to ``ratio`` of the requests of the last ``ttl``
seconds, plus a small reserve (``min_per_second``) so that low traffic
can still retry::

    retries allowed in the window = ratio * requests + min_per_second * ttl

Every request deposits (:meth:`RetryBudget.record_request`), every retry
withdraws one token (:meth:`RetryBudget.try_acquire`); both are counted
in one-second buckets on the injected clock, so old traffic stops
funding retries after ``ttl`` seconds. One budget is shared by every
call to a dependency (and may be shared by several policies).

Written by hand: tenacity and stamina have no notion of a budget shared
across calls.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from lms_shared.clock import Clock

__all__ = ["BudgetMetrics", "RetryBudget"]


@dataclass(frozen=True, slots=True)
class BudgetMetrics:
    """A snapshot of a :class:`RetryBudget`.

    Attributes:
        requests: requests recorded in the current window.
        retries: retries granted in the current window.
        available: retries that would be granted now.
        denied: retries refused since the budget was made.
    """

    requests: int
    retries: int
    available: int
    denied: int


class RetryBudget:
    """Retries allowed up to a share of recent requests, on the clock.

    Args:
        clock: the service clock.
        ratio: retries per request (0.2: at most one retry per five requests).
        min_per_second: retries per second always allowed, whatever the traffic.
        ttl: seconds a request keeps funding retries (the window; whole seconds).

    Raises:
        ValueError: a negative ratio or reserve, or a window under one second.
    """

    __slots__ = (
        "_buckets",
        "_deposits",
        "_head",
        "_requests",
        "_retries",
        "_withdrawals",
        "clock",
        "denied",
        "min_per_second",
        "ratio",
        "reserve",
        "ttl",
    )

    def __init__(
        self,
        *,
        clock: Clock,
        ratio: float = 0.2,
        min_per_second: float = 10.0,
        ttl: float = 10.0,
    ) -> None:
        if not (math.isfinite(ratio) and ratio >= 0):
            raise ValueError(f"retry budget ratio must be >= 0, got {ratio}")
        if not (math.isfinite(min_per_second) and min_per_second >= 0):
            raise ValueError(f"retry budget min_per_second must be >= 0, got {min_per_second}")
        if not (math.isfinite(ttl) and 1 <= ttl <= 3600):
            raise ValueError(f"retry budget ttl must be 1 to 3600 seconds, got {ttl}")
        self.clock = clock
        self.ratio = ratio
        self.min_per_second = min_per_second
        self.ttl = ttl
        self._buckets = math.ceil(ttl)
        self.reserve = min_per_second * self._buckets
        self._deposits = [0] * self._buckets
        self._withdrawals = [0] * self._buckets
        self._requests = 0
        self._retries = 0
        self._head = math.floor(clock.monotonic())
        self.denied = 0

    def __repr__(self) -> str:
        return (
            f"RetryBudget(ratio={self.ratio}, min_per_second={self.min_per_second}, ttl={self.ttl})"
        )

    def _roll(self, second: int) -> None:
        head = self._head
        if second <= head:
            return
        size = self._buckets
        if second - head >= size:
            self._deposits = [0] * size
            self._withdrawals = [0] * size
            self._requests = self._retries = 0
        else:
            deposits, withdrawals = self._deposits, self._withdrawals
            for tick in range(head + 1, second + 1):
                slot = tick % size
                self._requests -= deposits[slot]
                self._retries -= withdrawals[slot]
                deposits[slot] = withdrawals[slot] = 0
        self._head = second

    def record_request(self, now: float | None = None) -> None:
        """Count one request (a first attempt): it funds ``ratio`` retries.

        Args:
            now: the budget clock's ``monotonic()`` when the caller has just
                read it (saves reading it again); ``None`` reads it.
        """
        second = math.floor(self.clock.monotonic() if now is None else now)
        if second != self._head:
            self._roll(second)
        self._deposits[second % self._buckets] += 1
        self._requests += 1

    def _balance(self) -> float:
        return self.ratio * self._requests + self.reserve - self._retries

    def try_acquire(self) -> bool:
        """Take one retry from the budget; ``False`` (and counted) when none is left."""
        second = math.floor(self.clock.monotonic())
        if second != self._head:
            self._roll(second)
        if self._balance() < 1:
            self.denied += 1
            return False
        self._withdrawals[second % self._buckets] += 1
        self._retries += 1
        return True

    def metrics(self) -> BudgetMetrics:
        """The window's counts and what is left, as of now."""
        self._roll(math.floor(self.clock.monotonic()))
        return BudgetMetrics(
            requests=self._requests,
            retries=self._retries,
            available=max(0, math.floor(self._balance())),
            denied=self.denied,
        )
