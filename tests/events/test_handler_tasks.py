"""HandlerTasks: the broker transports' handler calls stop in bounded time, whatever they do."""

from __future__ import annotations

import asyncio
import contextlib

from lms_shared.events import Delivery
from lms_shared.events._broker import HandlerTasks


async def test_a_handler_that_ignores_cancellation_is_left_after_the_grace() -> None:
    release = asyncio.Event()
    started = asyncio.Event()

    async def stubborn(delivery: Delivery) -> None:
        started.set()
        while not release.is_set():
            with contextlib.suppress(asyncio.CancelledError):
                await release.wait()

    async def polite(delivery: Delivery) -> None:
        await asyncio.sleep(3600)

    errors: list[Exception] = []
    tasks = HandlerTasks(stubborn, lambda _, exc: errors.append(exc))
    others = HandlerTasks(polite, lambda _, exc: errors.append(exc))
    tasks.spawn(None)  # type: ignore[arg-type]  # the handlers never look at it
    others.spawn(None)  # type: ignore[arg-type]
    await started.wait()
    left = await asyncio.wait_for(tasks.stop(drain=False, timeout=0, grace=0.05), 5)
    assert left == 1  # bounded: reported, not waited for
    assert await asyncio.wait_for(others.stop(drain=False, timeout=0, grace=5), 5) == 0
    release.set()  # let the stubborn one end, so the test leaves nothing behind
    await asyncio.sleep(0)
    for _ in range(100):
        if not tasks.tasks:
            break
        await asyncio.sleep(0.01)
    assert not tasks.tasks
    assert errors == []


async def test_drain_waits_for_calls_that_finish_in_time() -> None:
    done: list[int] = []

    async def quick(delivery: Delivery) -> None:
        await asyncio.sleep(0.01)
        done.append(1)

    tasks = HandlerTasks(quick, lambda _, exc: None)
    for _ in range(5):
        tasks.spawn(None)  # type: ignore[arg-type]
    assert await tasks.stop(drain=True, timeout=5) == 0
    assert done == [1] * 5
