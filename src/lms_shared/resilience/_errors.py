"""The errors the resilience layer raises itself, and their problem codes.

Resilience never swallows: when the retries are spent (or not allowed)
the caller's own exception surfaces unchanged. The errors below are only
the ones this package decides on its own::

    LmsError
    ├── ResilienceError                  root of everything this package raises
    │   └── SharedStateUnavailable       Redis for the shared breaker state failed
    └── ProblemError
        ├── ServiceUnavailable
        │   ├── CircuitOpen              503 circuit-open: the breaker rejects the call
        │   ├── BulkheadFull             503 bulkhead-full: no free slot (or queue place)
        │   └── ConcurrencyLimited       503 concurrency-limited: the adaptive limit is reached
        └── ResilienceTimeout            504
            ├── AttemptTimeout           504 attempt-timeout: one attempt took too long
            └── DeadlineExceeded         504 deadline-exceeded: the total budget is spent

Every 503/504 error above is also a :class:`ResilienceError`, so
``except ResilienceError`` catches exactly what this package decided.
:class:`CircuitOpen` carries ``retry_after`` (seconds until the breaker
lets a probe through, when known) and the matching ``Retry-After`` header.
"""

from __future__ import annotations

import math

from lms_shared.errors import ErrorCode, LmsError, ProblemError, ServiceUnavailable

__all__ = [
    "ATTEMPT_TIMEOUT",
    "BULKHEAD_FULL",
    "CIRCUIT_OPEN",
    "CONCURRENCY_LIMITED",
    "DEADLINE_EXCEEDED",
    "PROBLEMS",
    "AttemptTimeout",
    "BulkheadFull",
    "CircuitOpen",
    "ConcurrencyLimited",
    "DeadlineExceeded",
    "ResilienceError",
    "ResilienceTimeout",
    "SharedStateUnavailable",
]

CIRCUIT_OPEN = ErrorCode("circuit-open", 503, "Dependency circuit open")
BULKHEAD_FULL = ErrorCode("bulkhead-full", 503, "Too many concurrent calls to a dependency")
CONCURRENCY_LIMITED = ErrorCode("concurrency-limited", 503, "Dependency concurrency limit reached")
ATTEMPT_TIMEOUT = ErrorCode("attempt-timeout", 504, "Dependency call timed out")
DEADLINE_EXCEEDED = ErrorCode("deadline-exceeded", 504, "Deadline exceeded")

PROBLEMS: tuple[ErrorCode, ...] = (
    CIRCUIT_OPEN,
    BULKHEAD_FULL,
    CONCURRENCY_LIMITED,
    ATTEMPT_TIMEOUT,
    DEADLINE_EXCEEDED,
)


class ResilienceError(LmsError):
    """Root of every error the resilience package raises on its own."""


class SharedStateUnavailable(ResilienceError):
    """The shared breaker state (Redis) could not be read or written."""


class CircuitOpen(ServiceUnavailable, ResilienceError):
    """503: the circuit breaker does not permit the call.

    Attributes:
        breaker: the breaker's name (``"identity"``, ``"identity/10.0.0.7:8000"``).
        state: the breaker state that rejected the call (``"OPEN"``, ...).
        retry_after: seconds until a call may be permitted again, or
            ``None`` when unknown (forced open, half-open probes all taken).
    """

    code = CIRCUIT_OPEN

    def __init__(self, breaker: str, state: str, retry_after: float | None = None) -> None:
        self.breaker = breaker
        self.state = state
        self.retry_after = retry_after
        headers = {} if retry_after is None else {"Retry-After": str(math.ceil(retry_after))}
        super().__init__(headers=headers)

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.breaker, self.state, self.retry_after))


class BulkheadFull(ServiceUnavailable, ResilienceError):
    """503: every slot of the bulkhead is taken and no queue place is left.

    Attributes:
        bulkhead: the bulkhead's name.
        max_concurrent_calls: its concurrency limit.
    """

    code = BULKHEAD_FULL

    def __init__(self, bulkhead: str, max_concurrent_calls: int) -> None:
        self.bulkhead = bulkhead
        self.max_concurrent_calls = max_concurrent_calls
        super().__init__()

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.bulkhead, self.max_concurrent_calls))


class ConcurrencyLimited(ServiceUnavailable, ResilienceError):
    """503: the adaptive concurrency limit is reached.

    Attributes:
        limiter: the limiter's name.
        limit: the limit at the moment of rejection.
    """

    code = CONCURRENCY_LIMITED

    def __init__(self, limiter: str, limit: int) -> None:
        self.limiter = limiter
        self.limit = limit
        super().__init__()

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.limiter, self.limit))


class ResilienceTimeout(ProblemError, ResilienceError):
    """504: a timeout of the resilience layer fired.

    Attributes:
        timeout: the timeout in seconds that was exceeded.
    """

    code = DEADLINE_EXCEEDED

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        super().__init__()

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.timeout,))


class AttemptTimeout(ResilienceTimeout):
    """504: one attempt took longer than its timeout (a retry may follow)."""

    code = ATTEMPT_TIMEOUT


class DeadlineExceeded(ResilienceTimeout):
    """504: the total time budget of a call is spent (no retry follows)."""

    code = DEADLINE_EXCEEDED
