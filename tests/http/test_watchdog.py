"""Request deadlines swept by one watchdog per loop."""

from __future__ import annotations

import asyncio

import pytest

from lms_shared.http import watchdog
from lms_shared.http.guards import run_bounded
from lms_shared.http.watchdog import Watchdog, arm


async def test_an_expired_deadline_is_called_once_and_a_cancelled_one_never() -> None:
    loop = asyncio.get_running_loop()
    dog = Watchdog(loop, tick=0.01)
    fired: list[str] = []
    dog.add(loop.time() + 0.02, lambda: fired.append("late"))
    cancel = dog.add(loop.time() + 0.02, lambda: fired.append("cancelled"))
    dog.add(loop.time() + 3600, lambda: fired.append("far"))
    cancel()
    cancel()  # twice is harmless
    for _ in range(200):
        if fired:
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)
    assert fired == ["late"]
    assert len(dog) == 1  # the far one still waits


async def test_the_sweep_stops_when_nothing_waits_and_starts_again() -> None:
    loop = asyncio.get_running_loop()
    dog = Watchdog(loop, tick=0.01)
    dog.add(loop.time(), lambda: None)()  # added and cancelled at once
    await asyncio.sleep(0.05)
    assert not dog._armed
    fired = asyncio.Event()
    dog.add(loop.time(), fired.set)
    await asyncio.wait_for(fired.wait(), 5)


async def test_budgets_below_a_second_keep_a_timer_of_their_own() -> None:
    loop = asyncio.get_running_loop()
    fired = asyncio.Event()
    arm(loop, 0.01, fired.set)
    assert not watchdog._last or len(watchdog._last[0]) == 0
    await asyncio.wait_for(fired.wait(), 5)
    cancel = arm(loop, 5.0, lambda: None)
    assert len(watchdog._last[0]) == 1
    cancel()
    assert len(watchdog._last[0]) == 0


async def test_a_bounded_request_on_the_sweep_is_cut_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(watchdog, "COARSE", 0.0)  # every budget on the sweep
    monkeypatch.setattr(watchdog, "_last", [])
    sent: list[dict[str, object]] = []

    async def slow(scope: object, receive: object, send: object) -> None:
        await asyncio.sleep(30)

    async def expired(scope: object, send: object) -> None:
        sent.append({"status": 504})

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    await asyncio.wait_for(
        run_bounded(slow, {"type": "http"}, None, send, 0.02, expired),  # type: ignore[arg-type]
        5,
    )
    assert sent == [{"status": 504}]
    assert len(watchdog._last[0]) == 0
