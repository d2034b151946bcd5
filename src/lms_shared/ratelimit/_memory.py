"""The in-process rate-limit storage: a bounded dict of TATs.

The default (``LMS_RATELIMIT_URL`` unset): no server, nothing to install,
sub-microsecond steps. Its limits are per process: with several workers
or replicas each enforces its own, so use Redis to share them. The dict
is bounded: when it is full, entries whose TAT has passed (clients back to
a whole quota, indistinguishable from unknown ones) are dropped first,
then the oldest entries.
"""

from __future__ import annotations

from lms_shared.observability import get_logger

__all__ = ["MemoryStorage"]


class MemoryStorage:
    """TATs in a dict, for one process.

    Args:
        max_keys: client keys kept at most.
    """

    name = "memory"

    def __init__(self, max_keys: int = 100_000) -> None:
        if max_keys < 1:
            raise ValueError("max_keys must be positive")
        self.max_keys = max_keys
        self._tats: dict[str, int] = {}
        self._warned = False

    def __repr__(self) -> str:
        return f"MemoryStorage(keys={len(self._tats)}, max_keys={self.max_keys})"

    async def acquire(
        self, key: str, now_us: int, interval_us: int, tolerance_us: int, cost: int
    ) -> tuple[bool, int, int]:
        """One GCRA step (see :class:`~lms_shared.ratelimit.RateLimitStorage`)."""
        return self.acquire_now(key, now_us, interval_us, tolerance_us, cost)

    def acquire_now(
        self, key: str, now_us: int, interval_us: int, tolerance_us: int, cost: int
    ) -> tuple[bool, int, int]:
        """:meth:`acquire` without a coroutine: the limiter's fast path for local storage."""
        tats = self._tats
        tat = tats.get(key, now_us)
        tat = max(tat, now_us)
        new = tat + interval_us * cost
        if new - now_us > tolerance_us:
            return False, tat, now_us
        if cost:
            if len(tats) >= self.max_keys and key not in tats:
                self._evict(now_us)
            tats[key] = new
        return True, new, now_us

    async def reset(self, key: str) -> None:
        """Forget ``key``."""
        self._tats.pop(key, None)

    async def start(self) -> None:
        """Nothing to connect."""

    async def stop(self) -> None:
        """Drop every key."""
        self._tats.clear()

    async def ping(self) -> None:
        """Always answers."""

    def __len__(self) -> int:
        return len(self._tats)

    def _evict(self, now_us: int) -> None:
        tats = self._tats
        for key in [k for k, tat in tats.items() if tat <= now_us]:
            del tats[key]
        excess = len(tats) - (self.max_keys * 9) // 10
        if excess > 0:
            if not self._warned:
                self._warned = True
                get_logger("lms.ratelimit").warning(
                    "rate-limit memory storage is full; forgetting the oldest clients",
                    max_keys=self.max_keys,
                )
            for key in list(tats)[:excess]:
                del tats[key]
