"""Bulkheads (a fixed limit with a queue) and the adaptive concurrency limit."""

from __future__ import annotations

import asyncio

import pytest

from lms_shared.resilience import (
    AdaptiveLimit,
    AttemptTimeout,
    Bulkhead,
    BulkheadFull,
    ConcurrencyLimited,
)
from lms_shared.testing import ManualClock


class Gate:
    """Calls that wait until the test opens the gate."""

    def __init__(self) -> None:
        self.opened = asyncio.Event()
        self.entered = 0

    async def __call__(self) -> str:
        self.entered += 1
        await self.opened.wait()
        return "done"


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


# -- bulkhead ---------------------------------------------------------------------


async def test_the_bulkhead_rejects_beyond_its_slots_without_a_wait(clock: ManualClock) -> None:
    bulkhead = Bulkhead("grading", clock=clock, max_concurrent_calls=2)
    gate = Gate()
    running = [asyncio.create_task(bulkhead.call(gate)) for _ in range(2)]
    await settle()
    with pytest.raises(BulkheadFull) as caught:
        await bulkhead.call(gate)
    assert (caught.value.bulkhead, caught.value.max_concurrent_calls) == ("grading", 2)
    assert caught.value.status == 503
    gate.opened.set()
    assert await asyncio.gather(*running) == ["done", "done"]
    metrics = bulkhead.metrics()
    assert (metrics.active_calls, metrics.available_slots, metrics.rejected_calls) == (0, 2, 1)


async def test_queued_calls_get_freed_slots_in_order(clock: ManualClock) -> None:
    bulkhead = Bulkhead("grading", clock=clock, max_concurrent_calls=1, max_wait_duration=10)
    order: list[int] = []
    gate = asyncio.Event()

    async def job(n: int) -> None:
        async with bulkhead:
            order.append(n)
            await gate.wait()

    tasks = [asyncio.create_task(job(n)) for n in range(4)]
    await settle()
    assert order == [0]
    assert bulkhead.metrics().queued_calls == 3
    gate.set()
    await asyncio.gather(*tasks)
    assert order == [0, 1, 2, 3]
    assert bulkhead.metrics().active_calls == 0


async def test_the_queue_is_bounded(clock: ManualClock) -> None:
    bulkhead = Bulkhead(
        "grading", clock=clock, max_concurrent_calls=1, max_queued_calls=1, max_wait_duration=10
    )
    gate = Gate()
    first = asyncio.create_task(bulkhead.call(gate))
    queued = asyncio.create_task(bulkhead.call(gate))
    await settle()
    with pytest.raises(BulkheadFull):
        await bulkhead.call(gate)
    gate.opened.set()
    assert await asyncio.gather(first, queued) == ["done", "done"]


async def test_a_queued_call_gives_up_after_the_wait(clock: ManualClock) -> None:
    bulkhead = Bulkhead("grading", clock=clock, max_concurrent_calls=1, max_wait_duration=3)
    gate = Gate()
    holder = asyncio.create_task(bulkhead.call(gate))
    waiter = asyncio.create_task(bulkhead.call(gate))
    await settle()
    await clock.advance(2.9)
    assert not waiter.done()
    await clock.advance(0.1)
    with pytest.raises(BulkheadFull):
        await waiter
    assert bulkhead.metrics().queued_calls == 0
    gate.opened.set()
    assert await holder == "done"
    assert await bulkhead.call(gate) == "done"  # the slot count is whole again
    assert bulkhead.metrics().active_calls == 0


async def test_a_cancelled_waiter_leaves_the_queue(clock: ManualClock) -> None:
    bulkhead = Bulkhead("grading", clock=clock, max_concurrent_calls=1, max_wait_duration=30)
    gate = Gate()
    holder = asyncio.create_task(bulkhead.call(gate))
    waiter = asyncio.create_task(bulkhead.call(gate))
    await settle()
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    gate.opened.set()
    await holder
    assert bulkhead.metrics().active_calls == 0
    assert gate.entered == 1


async def test_the_slot_is_freed_when_the_call_fails(clock: ManualClock) -> None:
    bulkhead = Bulkhead("grading", clock=clock, max_concurrent_calls=1)

    async def broken() -> None:
        raise ConnectionError("down")

    for _ in range(3):
        with pytest.raises(ConnectionError):
            await bulkhead.call(broken)
    assert bulkhead.metrics().active_calls == 0


@pytest.mark.parametrize(
    "options",
    [{"max_concurrent_calls": 0}, {"max_queued_calls": -1}, {"max_wait_duration": -1}],
)
def test_invalid_bulkheads_are_refused(clock: ManualClock, options: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="max_"):
        Bulkhead("grading", clock=clock, **options)  # type: ignore[arg-type]


# -- adaptive limit -----------------------------------------------------------------


async def timed(limiter: AdaptiveLimit, clock: ManualClock, seconds: float) -> None:
    started = limiter.acquire()
    await clock.advance(seconds)
    limiter.release(started)


async def test_the_limit_grows_while_latency_is_steady_and_the_limit_used(
    clock: ManualClock,
) -> None:
    limiter = AdaptiveLimit("grading", clock=clock, initial_limit=4, max_limit=6)
    held = [limiter.acquire() for _ in range(2)]  # half the limit in use
    for _ in range(5):
        await timed(limiter, clock, 0.01)
    assert limiter.limit == 6  # grown by one per sample, up to the maximum
    for started in held:
        limiter.release(started)


async def test_an_idle_limit_does_not_grow(clock: ManualClock) -> None:
    limiter = AdaptiveLimit("grading", clock=clock, initial_limit=10)
    for _ in range(5):
        await timed(limiter, clock, 0.01)
    assert limiter.limit == 10


async def test_the_limit_shrinks_when_latency_rises(clock: ManualClock) -> None:
    limiter = AdaptiveLimit("grading", clock=clock, initial_limit=20, min_limit=2)
    for _ in range(20):
        await timed(limiter, clock, 0.01)
    assert limiter.limit == 20
    for _ in range(30):
        await timed(limiter, clock, 0.2)  # twenty times slower
    assert limiter.limit < 20
    assert limiter.limit >= 2
    metrics = limiter.metrics()
    assert metrics.latency is not None
    assert metrics.baseline is not None
    assert metrics.latency > 2 * metrics.baseline


async def test_one_decrease_per_round_trip(clock: ManualClock) -> None:
    limiter = AdaptiveLimit("grading", clock=clock, initial_limit=20)
    started = [limiter.acquire() for _ in range(5)]
    await clock.advance(1)
    for s in started:
        limiter.release(s, dropped=True)  # five timeouts finishing together
    assert limiter.limit == 18  # one decrease (20 * 0.9), not five


async def test_calls_over_the_limit_are_rejected(clock: ManualClock) -> None:
    limiter = AdaptiveLimit("grading", clock=clock, initial_limit=2, min_limit=1, max_limit=2)
    gate = Gate()
    running = [asyncio.create_task(limiter.call(gate)) for _ in range(2)]
    await settle()
    with pytest.raises(ConcurrencyLimited) as caught:
        await limiter.call(gate)
    assert caught.value.limit == 2
    gate.opened.set()
    await asyncio.gather(*running)
    assert limiter.metrics().rejected_calls == 1
    assert limiter.in_flight == 0


async def test_a_timeout_shrinks_and_a_fast_error_teaches_nothing(clock: ManualClock) -> None:
    limiter = AdaptiveLimit("grading", clock=clock, initial_limit=10)

    async def times_out() -> None:
        raise AttemptTimeout(1.0)

    async def refused() -> None:
        raise ConnectionError("refused")

    with pytest.raises(ConnectionError):
        await limiter.call(refused)
    assert (limiter.limit, limiter.metrics().latency) == (10, None)
    with pytest.raises(AttemptTimeout):
        await limiter.call(times_out)
    assert limiter.limit == 9
    assert limiter.in_flight == 0


@pytest.mark.parametrize(
    "options",
    [
        {"initial_limit": 0},
        {"min_limit": 5, "initial_limit": 4},
        {"max_limit": 10, "initial_limit": 20},
        {"backoff_ratio": 1.0},
        {"latency_tolerance": 1.0},
        {"smoothing": 0.01, "baseline_smoothing": 0.1},
    ],
)
def test_invalid_adaptive_limits_are_refused(clock: ManualClock, options: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="must"):
        AdaptiveLimit("grading", clock=clock, **options)  # type: ignore[arg-type]
