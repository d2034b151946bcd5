"""Hedged requests: when a read is slow, ask again in parallel; the first success wins.

Tail latency is mostly a few slow replicas or a few slow moments. For an
idempotent read, :class:`Hedge` starts the call, and if it has not
answered after ``delay`` seconds starts another (up to ``max_hedged``
extra calls), without cancelling the first. The first call to succeed
wins; the others are cancelled (and awaited, so their cleanup has run
when :meth:`Hedge.call` returns). A call that *fails* before the delay
starts the next hedge at once. When every call failed, the last failure
is raised.

Only idempotent calls are hedged (``idempotent=False`` runs the call
once): a hedge is a duplicate sent on purpose. The delay is timed on the
injected clock; a good delay is the dependency's p95 latency ("The Tail
at Scale", Dean and Barroso, 2013).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from lms_shared.clock import Clock
from lms_shared.resilience._timeouts import sleep_until

__all__ = ["Hedge"]

T = TypeVar("T")


class Hedge:
    """A hedging policy for idempotent reads.

    Args:
        delay: seconds to wait for an answer before starting another call.
        clock: the service clock.
        max_hedged: extra calls at most (1: two calls in total).

    Raises:
        ValueError: a negative delay or ``max_hedged`` < 1.
    """

    def __init__(self, *, delay: float, clock: Clock, max_hedged: int = 1) -> None:
        if not (math.isfinite(delay) and delay >= 0):
            raise ValueError(f"hedge delay must be >= 0 seconds, got {delay}")
        if max_hedged < 1:
            raise ValueError(f"max_hedged must be >= 1, got {max_hedged}")
        self.delay = delay
        self.clock = clock
        self.max_hedged = max_hedged
        self.hedged = 0  # extra calls started since the policy was made

    def __repr__(self) -> str:
        return f"Hedge(delay={self.delay}, max_hedged={self.max_hedged})"

    async def call(self, fn: Callable[[], Awaitable[T]], *, idempotent: bool) -> T:
        """Await ``fn()``, hedged when ``idempotent``.

        Raises:
            Exception: the last failure when every call failed.
        """
        if not idempotent:
            return await fn()
        loop = asyncio.get_running_loop()

        async def attempt() -> T:
            return await fn()

        calls: set[asyncio.Task[T]] = {loop.create_task(attempt())}
        started = 1
        timer: asyncio.Task[None] | None = None
        last_error: BaseException = RuntimeError("hedge: no call finished")
        try:
            while calls:
                if timer is None and started <= self.max_hedged:
                    due = self.clock.monotonic() + self.delay
                    timer = loop.create_task(sleep_until(self.clock, due))
                waiting: set[asyncio.Future[Any]] = {*calls, *([timer] if timer else [])}
                done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
                hedge_now = timer is not None and timer in done
                for finished in [call for call in calls if call in done]:
                    calls.discard(finished)
                    error = finished.exception()
                    if error is None:
                        return finished.result()
                    last_error = error
                    hedge_now = True
                if hedge_now and started <= self.max_hedged:
                    if timer is not None:
                        timer.cancel()
                    timer = None
                    calls.add(loop.create_task(attempt()))
                    started += 1
                    self.hedged += 1
            raise last_error
        finally:
            pending: list[asyncio.Future[Any]] = [*calls, *([timer] if timer else [])]
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)
