"""The clock every time-reading component takes (DESIGN principle 7).

Components that expire, retry, back off or lease take a :class:`Clock`
instead of calling :mod:`time` so tests can drive time without sleeping.
:class:`lms_shared.testing.ManualClock` is the test double.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Protocol, runtime_checkable

__all__ = ["Clock", "SystemClock"]


@runtime_checkable
class Clock(Protocol):
    """Wall time, monotonic time and sleeping, as one injectable object."""

    def now(self) -> datetime:
        """The current time as a timezone-aware UTC datetime."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never goes backwards (for durations)."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait for ``seconds`` of this clock's time."""
        ...


class SystemClock:
    """The real clock: :func:`datetime.now`, :func:`time.monotonic`, asyncio sleep."""

    def now(self) -> datetime:
        """The current time as a timezone-aware UTC datetime."""
        return datetime.now(UTC)

    def monotonic(self) -> float:
        """Seconds from :func:`time.monotonic`."""
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        """Sleep on the running event loop."""
        await asyncio.sleep(seconds)
