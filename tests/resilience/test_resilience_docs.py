"""The first example of docs/resilience.md runs as written, on a manual clock."""

from __future__ import annotations

import asyncio
import re
import types
from pathlib import Path

from lms_shared.testing import ManualClock

DOC = Path(__file__).resolve().parents[2] / "docs" / "resilience.md"


def first_example() -> types.ModuleType:
    code = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.DOTALL)[0]
    module = types.ModuleType("docs_resilience_example")
    exec(compile(code, str(DOC), "exec", dont_inherit=True), module.__dict__)
    return module


async def test_the_example_retries_then_falls_back(clock: ManualClock) -> None:
    example = first_example()
    identity = example.identity_calls(clock)
    calls: list[str] = []

    async def fetch(uid: str) -> dict[str, str]:
        calls.append(uid)
        if len(calls) == 1:
            raise ConnectionError("connection reset")
        return {"name": "Ada"}

    task = asyncio.create_task(example.user_name(identity, fetch, "u-1"))
    for _ in range(100):  # bounded: drive the backoff (at most 0.1 s) by hand
        if task.done():
            break
        await asyncio.sleep(0)
        await clock.advance(0.01)
    assert await task == "Ada"
    assert calls == ["u-1", "u-1"]
    identity.breaker.transition_to_forced_open_state()
    assert await example.user_name(identity, fetch, "u-2") == "unknown"
    assert calls == ["u-1", "u-1"]  # the open breaker kept the call from leaving
