"""The errors of rate limiting (HTTP-free: the middleware renders them as problems)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from lms_shared import errors
from lms_shared.errors import ErrorCode, LmsError, ProblemError, ServiceUnavailable
from lms_shared.ratelimit._standing import current_standing

if TYPE_CHECKING:
    from lms_shared.ratelimit._policy import Decision

__all__ = ["PROBLEMS", "RateLimitUnavailable", "RateLimited", "StorageUnavailable"]

PROBLEMS: tuple[ErrorCode, ...] = (errors.RATE_LIMITED, errors.SERVICE_UNAVAILABLE)
"""The problem codes of rate limiting, for the service's catalogue."""


class StorageUnavailable(LmsError):
    """The rate-limit storage could not be reached or answered badly."""


class RateLimited(ProblemError):
    """429 ``quota-exceeded``: a client used up its quota; carries ``Retry-After``.

    Outside a request it also carries the policy's ``RateLimit`` fields;
    inside one (a :class:`~lms_shared.ratelimit.Standing` is active) the
    middleware writes those, for every policy the request met.

    Attributes:
        decision: the refusing decision.
    """

    code = errors.RATE_LIMITED

    def __init__(self, decision: Decision) -> None:
        self.decision = decision
        if current_standing() is None:
            headers = {k.decode(): v.decode() for k, v in decision.headers()}
        else:
            headers = {"retry-after": str(decision.retry_after)}
        super().__init__(
            f"rate limit {decision.policy.name!r} exceeded; retry in {decision.retry_after} s",
            headers=headers,
        )
        self.extensions["violated-policies"] = [decision.policy.name]


class RateLimitUnavailable(ServiceUnavailable):
    """503: the rate-limit storage is down and the limiter fails closed."""
