"""An adaptive concurrency limit: fewer calls in flight when latency rises.

A fixed bulkhead needs the right number up front; the right number moves
with the dependency's health. :class:`AdaptiveLimit` finds it the way
TCP congestion control and Netflix's ``concurrency-limits`` (its AIMD
and Gradient2 limits) do, from the latency of the calls themselves:

* two exponentially weighted moving averages of the round-trip time: a
  short one (``smoothing``, the latency now) and a long one
  (``baseline_smoothing``, the latency the dependency normally has);
* when the short average exceeds ``latency_tolerance`` times the long
  one, or a call timed out, the limit is multiplied by ``backoff_ratio``
  (at most once per short round trip, so one slow burst is one decrease);
* otherwise, when the limit is actually used (at least half of it in
  flight), it grows by one, up to ``max_limit``.

Calls over the limit are rejected at once with
:class:`~lms_shared.resilience.ConcurrencyLimited` (queueing would hide
the overload the limit exists to shed). Calls that fail with another
error than a timeout leave the limit alone: a fast error says nothing
about the dependency's latency. Times come from the injected clock.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from lms_shared.clock import Clock
from lms_shared.resilience._errors import ConcurrencyLimited, ResilienceTimeout

__all__ = ["AdaptiveLimit", "AdaptiveMetrics"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class AdaptiveMetrics:
    """A snapshot of an :class:`AdaptiveLimit`.

    Attributes:
        name: the limiter's name.
        limit: calls allowed in flight now.
        in_flight: calls in flight.
        latency: the short moving average of the round-trip time (seconds),
            ``None`` before the first sample.
        baseline: the long moving average (seconds), ``None`` before the first sample.
        rejected_calls: calls rejected since the limiter was made.
    """

    name: str
    limit: int
    in_flight: int
    latency: float | None
    baseline: float | None
    rejected_calls: int


class AdaptiveLimit:
    """A concurrency limit that follows the dependency's latency.

    Args:
        name: names the limiter in errors and metrics.
        clock: the service clock (round-trip times).
        initial_limit: the limit to start from.
        min_limit: the limit never goes below this.
        max_limit: nor above this.
        backoff_ratio: multiplier of a decrease, in (0, 1).
        latency_tolerance: how many times the baseline latency counts as risen (> 1).
        smoothing: weight of a new sample in the short average, in (0, 1].
        baseline_smoothing: weight of a new sample in the long average
            (smaller than ``smoothing``).

    Raises:
        ValueError: limits out of order, or a ratio or weight out of its range.
    """

    def __init__(
        self,
        name: str,
        *,
        clock: Clock,
        initial_limit: int = 20,
        min_limit: int = 1,
        max_limit: int = 200,
        backoff_ratio: float = 0.9,
        latency_tolerance: float = 2.0,
        smoothing: float = 0.2,
        baseline_smoothing: float = 0.01,
    ) -> None:
        if not 1 <= min_limit <= initial_limit <= max_limit:
            raise ValueError(
                "limits must satisfy 1 <= min_limit <= initial_limit <= max_limit, got "
                f"{min_limit}, {initial_limit}, {max_limit}"
            )
        if not 0 < backoff_ratio < 1:
            raise ValueError(f"backoff_ratio must be in (0, 1), got {backoff_ratio}")
        if not (math.isfinite(latency_tolerance) and latency_tolerance > 1):
            raise ValueError(f"latency_tolerance must be > 1, got {latency_tolerance}")
        if not 0 < baseline_smoothing < smoothing <= 1:
            raise ValueError(
                "smoothing weights must satisfy 0 < baseline_smoothing < smoothing <= 1, "
                f"got {baseline_smoothing}, {smoothing}"
            )
        self.name = name
        self.clock = clock
        self.min_limit = min_limit
        self.max_limit = max_limit
        self.backoff_ratio = backoff_ratio
        self.latency_tolerance = latency_tolerance
        self.smoothing = smoothing
        self.baseline_smoothing = baseline_smoothing
        self._limit = initial_limit
        self._in_flight = 0
        self._short: float | None = None
        self._long: float | None = None
        self._last_decrease = -math.inf
        self._rejected = 0

    def __repr__(self) -> str:
        return f"AdaptiveLimit({self.name!r}, limit={self._limit}, in_flight={self._in_flight})"

    @property
    def limit(self) -> int:
        """Calls allowed in flight now."""
        return self._limit

    @property
    def in_flight(self) -> int:
        """Calls in flight now."""
        return self._in_flight

    def acquire(self) -> float:
        """Take a place; returns the call's start time.

        Raises:
            ConcurrencyLimited: the limit is reached.
        """
        if self._in_flight >= self._limit:
            self._rejected += 1
            raise ConcurrencyLimited(self.name, self._limit)
        self._in_flight += 1
        return self.clock.monotonic()

    def release(self, started: float, *, dropped: bool = False, sample: bool = True) -> None:
        """Give the place back and learn from the call's round trip.

        Args:
            started: what :meth:`acquire` returned.
            dropped: the call timed out (or was shed by the dependency):
                decrease whatever the latency.
            sample: learn from this call (``False`` for a fast failure).
        """
        in_flight = self._in_flight
        self._in_flight = in_flight - 1
        if not (sample or dropped):
            return
        now = self.clock.monotonic()
        rtt = now - started
        if self._short is None or self._long is None:
            self._short = self._long = rtt
        else:
            self._short += self.smoothing * (rtt - self._short)
            self._long += self.baseline_smoothing * (rtt - self._long)
        risen = self._short > self.latency_tolerance * self._long
        if dropped or risen:
            if now - self._last_decrease >= self._short:
                self._last_decrease = now
                self._limit = max(self.min_limit, math.floor(self._limit * self.backoff_ratio))
        elif in_flight * 2 >= self._limit and self._limit < self.max_limit:
            self._limit += 1

    async def call(self, fn: Callable[[], Awaitable[T]]) -> T:
        """Await ``fn()`` within the limit.

        Raises:
            ConcurrencyLimited: the limit is reached (``fn`` is not called).
        """
        started = self.acquire()
        try:
            result = await fn()
        except ResilienceTimeout:
            self.release(started, dropped=True)
            raise
        except BaseException:
            self.release(started, sample=False)
            raise
        self.release(started)
        return result

    def metrics(self) -> AdaptiveMetrics:
        """The limit, what is in flight, the latency averages and rejections."""
        return AdaptiveMetrics(
            name=self.name,
            limit=self._limit,
            in_flight=self._in_flight,
            latency=self._short,
            baseline=self._long,
            rejected_calls=self._rejected,
        )
