"""The rate limiter: policies checked against a storage, time from the Clock.

:class:`RateLimiter` is a service component (started and stopped in the
lifespan, with a readiness check for remote storage). The middleware uses
it for every request; code uses it directly for limits that need what
only the handler knows::

    decision = await service.rate_limits.check(f"login:{body.username}", LOGIN)
    # raises RateLimited (a 429 problem with Retry-After) when refused

When the storage fails, ``on_error="allow"`` admits the request (logged,
at most once a minute) and ``"deny"`` answers 503: choose per the harm an
unlimited minute would do.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal

from lms_shared.clock import Clock, SystemClock
from lms_shared.observability import get_logger
from lms_shared.ratelimit._errors import RateLimited, RateLimitUnavailable, StorageUnavailable
from lms_shared.ratelimit._policy import Decision, Quota
from lms_shared.ratelimit._standing import CURRENT_STANDING
from lms_shared.ratelimit._storage import RateLimitStorage, storage_from_url
from lms_shared.settings import Settings

__all__ = ["RateLimiter"]

_WARN_EVERY = 60.0
_NEVER = float("-inf")


class RateLimiter:
    """Checks policies for client keys; one per service.

    Args:
        storage: where the state lives.
        clock: the time source (the storage may use its own, see
            ``clock=server`` in :mod:`lms_shared.ratelimit`).
        namespace: prefix of every key (the service name), so services
            sharing a Redis keep separate quotas.
        on_error: ``allow`` (fail open) or ``deny`` (fail closed, 503).
        cooldown: seconds the storage is left alone after a failure (each
            request then gets the ``on_error`` answer at once instead of
            waiting for a connect timeout).
    """

    name = "ratelimit"

    def __init__(
        self,
        storage: RateLimitStorage,
        *,
        clock: Clock,
        namespace: str = "",
        on_error: Literal["allow", "deny"] = "allow",
        cooldown: float = 1.0,
    ) -> None:
        if on_error not in {"allow", "deny"}:
            raise ValueError("on_error is 'allow' or 'deny'")
        if cooldown < 0:
            raise ValueError("cooldown must not be negative")
        self.cooldown = cooldown
        self._down_until = _NEVER
        # local storage may offer a synchronous step (no I/O, so no coroutine needed)
        self._acquire_now: Callable[[str, int, int, int, int], tuple[bool, int, int]] | None = (
            getattr(storage, "acquire_now", None)
        )
        if type(clock) is SystemClock:  # the same instant, without building a datetime
            self._now_us: Callable[[], int] = lambda: time.time_ns() // 1000
        else:
            self._now_us = lambda: int(clock.now().timestamp() * 1_000_000)
        self.storage = storage
        self.clock = clock
        self.namespace = f"{namespace}:" if namespace else ""
        self.on_error = on_error
        self.log = get_logger("lms.ratelimit")
        self._last_warning = float("-inf")

    def __repr__(self) -> str:
        return f"RateLimiter({self.storage!r}, namespace={self.namespace!r})"

    @classmethod
    def from_settings(cls, settings: Settings, clock: Clock, *, namespace: str) -> RateLimiter:
        """The limiter of ``LMS_RATELIMIT_URL`` and ``LMS_RATELIMIT_ON_ERROR``.

        Raises:
            SettingsError: the URL's scheme is unknown or its driver missing.
        """
        return cls(
            storage_from_url(settings.ratelimit_url),
            clock=clock,
            namespace=namespace,
            on_error=settings.ratelimit_on_error,
        )

    async def hit(self, key: str, policy: Quota, cost: int = 1) -> Decision:
        """Count a request of ``key`` against ``policy`` and say if it is admitted.

        Inside a request, the decision is also recorded in the request's
        :class:`~lms_shared.ratelimit.Standing`, so the response carries
        this policy's ``RateLimit`` fields whatever its status.

        Args:
            key: the client key (``ip:203.0.113.9``, ``principal:u-42``).
            policy: the quota.
            cost: how many requests this one counts for (0 only looks).

        Raises:
            ValueError: ``cost`` is negative or above the policy's burst.
            RateLimitUnavailable: the storage failed and ``on_error="deny"``.
        """
        decision = await self._hit(key, policy, cost)
        standing = CURRENT_STANDING.get()
        if standing is not None:
            standing.record(decision)
        return decision

    async def _hit(self, key: str, policy: Quota, cost: int) -> Decision:
        if not 0 <= cost <= policy.burst:
            raise ValueError(f"cost must be between 0 and the burst ({policy.burst})")
        if self._down_until != _NEVER:
            if self._down_until > self.clock.monotonic():
                return self._degraded(policy, None)
            self._down_until = _NEVER
        now = self._now_us()
        full_key = f"{self.namespace}{policy.name}:{key}"
        if self._acquire_now is not None:
            allowed, tat, used_now = self._acquire_now(
                full_key, now, policy.interval_us, policy.tolerance_us, cost
            )
            return policy.decide(allowed, tat, used_now, cost)
        try:
            allowed, tat, used_now = await self.storage.acquire(
                full_key, now, policy.interval_us, policy.tolerance_us, cost
            )
        except StorageUnavailable as exc:
            self._down_until = self.clock.monotonic() + self.cooldown
            return self._degraded(policy, exc)
        return policy.decide(allowed, tat, used_now, cost)

    def hit_local(self, key: str, policy: Quota, cost: int = 1) -> Decision | None:
        """:meth:`hit` without awaiting, when the storage is in-process.

        Returns:
            The decision, or ``None`` when the storage is remote (then
            ``await`` :meth:`hit`). The middleware's fast path.
        """
        if self._acquire_now is None or not 0 < cost <= policy.burst:
            return None
        allowed, tat, used_now = self._acquire_now(
            f"{self.namespace}{policy.name}:{key}",
            self._now_us(),
            policy.interval_us,
            policy.tolerance_us,
            cost,
        )
        decision = policy.decide(allowed, tat, used_now, cost)
        standing = CURRENT_STANDING.get()
        if standing is not None:
            standing.record(decision)
        return decision

    async def check(self, key: str, policy: Quota, *, cost: int = 1) -> Decision:
        """:meth:`hit`, raising :class:`RateLimited` when refused.

        Raises:
            RateLimited: the quota is used up (a 429 problem).
            RateLimitUnavailable: the storage failed and ``on_error="deny"``.
        """
        decision = await self.hit(key, policy, cost=cost)
        if not decision.allowed:
            raise RateLimited(decision)
        return decision

    async def peek(self, key: str, policy: Quota) -> Decision:
        """The standing of ``key`` without counting a request."""
        return await self.hit(key, policy, cost=0)

    async def reset(self, key: str, policy: Quota) -> None:
        """Make ``key``'s quota whole again (after a successful login, say)."""
        await self.storage.reset(f"{self.namespace}{policy.name}:{key}")

    async def start(self) -> None:
        """Start the storage (a remote one connects lazily on failure)."""
        await self.storage.start()

    async def stop(self) -> None:
        """Stop the storage."""
        await self.storage.stop()

    async def ping(self) -> None:
        """Readiness: raise when the storage does not answer."""
        await self.storage.ping()

    def _degraded(self, policy: Quota, exc: StorageUnavailable | None) -> Decision:
        monotonic = self.clock.monotonic()
        if exc is not None and monotonic - self._last_warning >= _WARN_EVERY:
            self._last_warning = monotonic
            self.log.warning(
                "rate-limit storage unavailable",
                storage=self.storage.name,
                on_error=self.on_error,
                error=str(exc),
            )
        if self.on_error == "deny":
            raise RateLimitUnavailable(
                "rate limiting is unavailable; retry shortly", headers={"retry-after": "1"}
            ) from exc
        return Decision(policy, True, policy.burst, 0, 0, degraded=True)
