"""The runtime state the lifespan and the middleware share."""

from __future__ import annotations

import asyncio

__all__ = ["RuntimeState"]


class RuntimeState:
    """What the lifespan and the middleware share about the running service.

    Attributes:
        started: every component has started.
        draining: shutdown has begun; new requests get a 503 problem.
        inflight: requests being served right now.
    """

    def __init__(self) -> None:
        self.started = False
        self.draining = False
        self.inflight = 0
        self._idle = asyncio.Event()
        self._idle.set()

    def enter(self) -> None:
        """Count a request in."""
        self.inflight += 1
        self._idle.clear()

    def leave(self) -> None:
        """Count a request out."""
        self.inflight -= 1
        if self.inflight == 0:
            self._idle.set()

    async def wait_idle(self, within: float) -> bool:
        """Wait until no request is in flight; ``False`` if ``within`` seconds passed first."""
        try:
            async with asyncio.timeout(within):
                await self._idle.wait()
        except TimeoutError:
            return False
        return True
