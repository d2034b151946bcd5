"""The memory transport's conformance factories (on the system clock)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from lms_shared.clock import SystemClock
from lms_shared.events import MemoryTransport, Transport


@asynccontextmanager
async def transport(namespace: str) -> AsyncIterator[Transport]:
    started = MemoryTransport(SystemClock(), name=f"memory-{namespace}")
    await started.start()
    try:
        yield started
    finally:
        await started.stop()


@asynccontextmanager
async def unreachable(namespace: str) -> AsyncIterator[Transport]:
    down = MemoryTransport(SystemClock(), name=f"memory-{namespace}")
    down.reachable = False
    try:
        yield down
    finally:
        await down.stop()
