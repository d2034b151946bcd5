"""Request deadlines checked by one sweep per event loop, instead of one timer each.

Every request of a service is bounded (``LMS_REQUEST_TIMEOUT``). Arming a
loop timer for each and cancelling it when the response starts cost about
8 µs a request under uvloop (a libuv timer started and stopped), more than
any other layer of the stack. A :class:`Watchdog` keeps the deadlines of the
requests in flight in a dict (an insert and a delete per request) and
sweeps them every :data:`TICK` seconds while any is waiting; an expired one
is called at most one tick late, which is nothing against a budget of a
second or more. Shorter budgets (a caller's ``x-lms-timeout-ms`` of a few
milliseconds) keep a timer of their own: :func:`arm` decides.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable

__all__ = ["COARSE", "TICK", "Watchdog", "arm"]

TICK = 0.05
"""Seconds between two sweeps while deadlines wait."""
COARSE = 1.0
"""Budgets of at least this many seconds are left to the sweep."""

Cancel = Callable[[], None]


class Watchdog:
    """The deadlines of one event loop's requests, swept while any waits.

    Args:
        loop: the loop whose time the deadlines are on and that runs the sweep.
        tick: seconds between sweeps.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, *, tick: float = TICK) -> None:
        self.loop = loop
        self.tick = tick
        self._waiting: dict[int, tuple[float, Callable[[], None]]] = {}
        self._ids = itertools.count()
        self._armed = False

    def __len__(self) -> int:
        """Deadlines waiting."""
        return len(self._waiting)

    def add(self, deadline: float, expire: Callable[[], None]) -> Cancel:
        """Call ``expire`` once ``deadline`` (loop time) passed; returns the cancel function."""
        key = next(self._ids)
        waiting = self._waiting
        waiting[key] = (deadline, expire)
        if not self._armed:
            self._armed = True
            self.loop.call_later(self.tick, self._sweep)

        def cancel() -> None:
            waiting.pop(key, None)

        return cancel

    def _sweep(self) -> None:
        now = self.loop.time()
        due = [key for key, (deadline, _) in self._waiting.items() if deadline <= now]
        for key in due:
            _, expire = self._waiting.pop(key)
            expire()
        if self._waiting:
            self.loop.call_later(self.tick, self._sweep)
        else:
            self._armed = False


_last: list[Watchdog] = []


def _watchdog(loop: asyncio.AbstractEventLoop) -> Watchdog:
    """The watchdog of ``loop`` (the last one made is kept; a request holds its own)."""
    if _last and _last[0].loop is loop:
        return _last[0]
    made = Watchdog(loop)
    _last[:] = [made]
    return made


def arm(loop: asyncio.AbstractEventLoop, seconds: float, expire: Callable[[], None]) -> Cancel:
    """Call ``expire`` in ``seconds`` unless cancelled: by the sweep, or a timer when short."""
    if seconds >= COARSE:
        return _watchdog(loop).add(loop.time() + seconds, expire)
    return loop.call_later(seconds, expire).cancel
