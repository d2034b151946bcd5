"""Hedged reads (first success wins, losers cancelled) and fallbacks."""

from __future__ import annotations

import asyncio

import pytest

from lms_shared.resilience import BulkheadFull, CircuitOpen, Fallback, Hedge
from lms_shared.testing import ManualClock


class Replica:
    """A call that answers after ``seconds`` of clock time (or fails)."""

    def __init__(self, clock: ManualClock, plan: list[tuple[float, str | Exception]]) -> None:
        self.clock = clock
        self.plan = plan
        self.started = 0
        self.cancelled = 0

    async def __call__(self) -> str:
        seconds, outcome = self.plan[self.started]
        self.started += 1
        try:
            await self.clock.sleep(seconds)
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        if isinstance(outcome, Exception):
            raise outcome
        return outcome


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_a_fast_answer_needs_no_hedge(clock: ManualClock) -> None:
    replica = Replica(clock, [(0.01, "first")])
    hedge = Hedge(delay=0.1, clock=clock)
    task = asyncio.create_task(hedge.call(replica, idempotent=True))
    await settle()
    await clock.advance(0.01)
    assert await task == "first"
    assert (replica.started, hedge.hedged) == (1, 0)


async def test_a_slow_call_is_hedged_and_the_faster_wins(clock: ManualClock) -> None:
    replica = Replica(clock, [(5.0, "slow"), (0.2, "hedge")])
    hedge = Hedge(delay=0.5, clock=clock)
    task = asyncio.create_task(hedge.call(replica, idempotent=True))
    await settle()
    await clock.advance(0.5)  # the hedge starts
    await settle()
    assert replica.started == 2
    await clock.advance(0.2)
    assert await task == "hedge"
    assert replica.cancelled == 1  # the slow loser was cancelled before returning
    assert clock.sleepers == 0


async def test_a_failure_starts_the_next_hedge_at_once(clock: ManualClock) -> None:
    replica = Replica(clock, [(0.1, ConnectionError("reset")), (0.1, "second")])
    hedge = Hedge(delay=10, clock=clock)
    task = asyncio.create_task(hedge.call(replica, idempotent=True))
    await settle()
    await clock.advance(0.1)
    await settle()
    assert replica.started == 2
    await clock.advance(0.1)
    assert await task == "second"


async def test_when_every_call_fails_the_last_failure_surfaces(clock: ManualClock) -> None:
    replica = Replica(clock, [(0.1, ConnectionError("one")), (0.1, ConnectionError("two"))])
    hedge = Hedge(delay=10, clock=clock, max_hedged=1)
    task = asyncio.create_task(hedge.call(replica, idempotent=True))
    for _ in range(3):
        await settle()
        await clock.advance(0.1)
    with pytest.raises(ConnectionError, match="two"):
        await task
    assert replica.started == 2


async def test_at_most_max_hedged_extra_calls(clock: ManualClock) -> None:
    replica = Replica(clock, [(100, "a"), (100, "b"), (100, "c"), (100, "d")])
    hedge = Hedge(delay=1, clock=clock, max_hedged=2)
    task = asyncio.create_task(hedge.call(replica, idempotent=True))
    for _ in range(5):
        await settle()
        await clock.advance(1)
    assert replica.started == 3
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert replica.cancelled == 3  # the caller's cancellation reaches every call


async def test_a_non_idempotent_call_is_never_hedged(clock: ManualClock) -> None:
    replica = Replica(clock, [(5.0, "once"), (0.1, "never")])
    hedge = Hedge(delay=0.1, clock=clock)
    task = asyncio.create_task(hedge.call(replica, idempotent=False))
    await settle()
    await clock.advance(1)
    await settle()
    assert replica.started == 1
    await clock.advance(4)
    assert await task == "once"


@pytest.mark.parametrize("options", [{"delay": -1}, {"delay": 1, "max_hedged": 0}])
def test_invalid_hedges_are_refused(clock: ManualClock, options: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=r"hedge|max_hedged"):
        Hedge(clock=clock, **options)  # type: ignore[arg-type]


# -- fallback ---------------------------------------------------------------------


async def test_a_fallback_answers_for_what_it_covers() -> None:
    async def rejected() -> str:
        raise CircuitOpen("identity", "OPEN", 10)

    seen: list[Exception] = []

    async def cached(exc: Exception) -> str:
        seen.append(exc)
        return "cached"

    assert await Fallback(cached).call(rejected) == "cached"
    assert isinstance(seen[0], CircuitOpen)
    assert await Fallback.value("default", on=(CircuitOpen, BulkheadFull)).call(rejected) == (
        "default"
    )


async def test_a_fallback_lets_everything_else_through() -> None:
    async def broken() -> str:
        raise ValueError("a bug stays a bug")

    with pytest.raises(ValueError, match="a bug"):
        await Fallback.value("default").call(broken)


def test_a_fallback_needs_exception_classes() -> None:
    async def handler(_: Exception) -> str:
        return "x"

    with pytest.raises(TypeError, match="on="):
        Fallback(handler, on=())
    with pytest.raises(TypeError, match="on="):
        Fallback(handler, on=(KeyboardInterrupt,))  # type: ignore[arg-type]
