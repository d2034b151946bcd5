"""Rate limits as a FastAPI dependency, for limits keyed by the verified caller.

The middleware runs before routing and authentication, so it can only
count what the request shows (address, API-key header). A limit per
authenticated principal belongs after the auth dependency has run, which
:func:`rate_limited` does: declare it *after* ``require(...)`` and it
counts the principal ``require`` stored in the request state::

    @router.post("/v1/courses/{course_id}/grades")
    async def grade(
        course_id: UUID,
        who: Principal = require("grade:write"),
        _: Decision = rate_limited("30/minute", name="grading"),
    ) -> Grade: ...

A refused call raises :class:`RateLimited` (429 problem, ``Retry-After``);
an admitted one gets the ``RateLimit`` headers on its response.
"""

from __future__ import annotations

from typing import Any

from fastapi import Depends, Request, Response

from lms_shared.ratelimit._keys import KeyFunc, key_chain
from lms_shared.ratelimit._limiter import RateLimiter
from lms_shared.ratelimit._policy import Decision, Policy, Rate

__all__ = ["rate_limited"]


def _limiter_of(request: Request) -> RateLimiter:
    service = getattr(request.app.state, "service", None)
    limiter = getattr(service, "rate_limits", None)
    if not isinstance(limiter, RateLimiter):
        raise RuntimeError("no rate limiter: build the app with create_service")
    return limiter


def rate_limited(
    rate: str | Rate | Policy,
    *,
    name: str = "default",
    burst: int = 0,
    key: KeyFunc | None = None,
    cost: int = 1,
) -> Any:
    """A dependency counting each call against ``rate``.

    Args:
        rate: ``"30/minute"``, a :class:`Rate` or a :class:`Policy`.
        name: the policy name (headers and storage keys).
        burst: calls admitted at once (the rate's limit by default).
        key: who is counted; the principal, else the peer address.
        cost: calls one request counts for.

    Returns:
        ``Depends(...)`` resolving to the admitting :class:`Decision`.

    Raises:
        ValueError: the rate does not parse, or cost exceeds the burst.
    """
    policy = Policy.of(rate, name=name, burst=burst)
    if not 1 <= cost <= policy.burst:
        raise ValueError(f"cost must be between 1 and the burst ({policy.burst})")
    find_key = key or key_chain(["principal", "ip"])

    async def dependency(request: Request, response: Response) -> Decision:
        limiter = _limiter_of(request)
        decision = await limiter.check(find_key(request.scope) or "ip:unknown", policy, cost=cost)
        if not decision.degraded:
            for header, value in decision.headers():
                response.headers[header.decode()] = value.decode()
        return decision

    return Depends(dependency)
