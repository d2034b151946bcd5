"""Timeouts per attempt and deadlines in total, on the manual and the real clock."""

from __future__ import annotations

import asyncio

import pytest

from lms_shared.clock import SystemClock
from lms_shared.resilience import AttemptTimeout, Deadline, DeadlineExceeded, call_with_timeout
from lms_shared.testing import ManualClock


async def test_a_fast_call_answers(clock: ManualClock) -> None:
    async def fast() -> str:
        return "ok"

    assert await call_with_timeout(fast, 1.0, clock=clock) == "ok"


async def test_a_slow_call_times_out_when_the_clock_says_so(clock: ManualClock) -> None:
    started = asyncio.Event()
    cleaned_up = []

    async def slow() -> str:
        started.set()
        try:
            await asyncio.Event().wait()
        finally:
            cleaned_up.append(True)
        return "never"

    task = asyncio.create_task(call_with_timeout(slow, 2.0, clock=clock))
    await started.wait()
    await clock.advance(1.9)
    assert not task.done()
    await clock.advance(0.1)
    with pytest.raises(AttemptTimeout) as caught:
        await task
    assert caught.value.timeout == 2.0
    assert caught.value.status == 504
    assert cleaned_up == [True]  # the call was cancelled, its cleanup ran


async def test_the_named_exception_is_raised(clock: ManualClock) -> None:
    async def slow() -> None:
        await asyncio.Event().wait()

    task = asyncio.create_task(
        call_with_timeout(slow, 1.0, clock=clock, exception=DeadlineExceeded)
    )
    await asyncio.sleep(0)
    await clock.advance(1)
    with pytest.raises(DeadlineExceeded):
        await task


async def test_an_outside_cancellation_stays_a_cancellation(clock: ManualClock) -> None:
    async def slow() -> None:
        await asyncio.Event().wait()

    task = asyncio.create_task(call_with_timeout(slow, 5.0, clock=clock))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_zero_timeout_fails_without_calling(clock: ManualClock) -> None:
    called = []

    async def tracked() -> None:
        called.append(1)

    with pytest.raises(AttemptTimeout):
        await call_with_timeout(tracked, 0, clock=clock)
    assert called == []


async def test_the_call_errors_pass_through(clock: ManualClock) -> None:
    async def broken() -> None:
        raise TimeoutError("the driver's own timeout, not ours")

    with pytest.raises(TimeoutError, match="driver"):
        await call_with_timeout(broken, 5.0, clock=clock)
    with pytest.raises(TimeoutError, match="driver"):
        await call_with_timeout(broken, 5.0, clock=SystemClock())


async def test_the_system_clock_uses_the_loop_timer() -> None:
    async def slow() -> None:
        await asyncio.Event().wait()

    with pytest.raises(AttemptTimeout):
        await call_with_timeout(slow, 0.01, clock=SystemClock())

    async def fast() -> int:
        return 7

    assert await call_with_timeout(fast, 5.0, clock=SystemClock()) == 7


async def test_no_cancellation_is_left_pending_after_a_timeout(clock: ManualClock) -> None:
    async def slow() -> None:
        await asyncio.Event().wait()

    async def caller() -> str:
        with pytest.raises(AttemptTimeout):
            await call_with_timeout(slow, 1.0, clock=clock)
        await asyncio.sleep(0)  # would raise CancelledError if a request were left over
        return "went on"

    task = asyncio.create_task(caller())
    await asyncio.sleep(0)
    await clock.advance(1)
    assert await task == "went on"
    assert asyncio.current_task() is not None


async def test_a_deadline_counts_down(clock: ManualClock) -> None:
    deadline = Deadline(10, clock=clock)
    await clock.advance(4)
    assert deadline.remaining() == 6
    assert not deadline.expired
    deadline.check()
    await clock.advance(7)
    assert deadline.remaining() == 0
    assert deadline.expired
    with pytest.raises(DeadlineExceeded):
        deadline.check()
    with pytest.raises(ValueError, match="deadline"):
        Deadline(-1, clock=clock)
