"""Rate limiting (the core, no HTTP): GCRA quotas, the limiter, memory and Redis storage.

* :class:`Quota` / :class:`Rate`: a named quota, ``Quota("login", Rate.parse("5/minute"))``;
* :class:`RateLimiter`: checks a key against a policy (``hit``, ``check``),
  with time from the service's :class:`~lms_shared.clock.Clock`;
* :class:`Standing`: every policy one request met and its decisions, so
  the response carries the ``RateLimit`` fields of all of them;
* storage chosen by ``LMS_RATELIMIT_URL`` (:func:`storage_from_url`):
  :class:`MemoryStorage` by default, Redis (``redis://``) to share limits
  across replicas (``pip install 'lms-shared[redis]'``);

The HTTP glue (the middleware with ``RateLimit`` / ``RateLimit-Policy`` /
``Retry-After`` headers and 429 problems, :func:`~lms_shared.http.limit`,
:func:`~lms_shared.http.exempt`, :func:`~lms_shared.http.rate_limited` and
the client key functions) is in :mod:`lms_shared.http`.

Why not the ``limits`` package: its async Redis strategies count in
fixed or sliding *windows* with several round trips, read the wall clock
themselves (no injected Clock, so tests would sleep), and pull in a
second Redis client stack; GCRA here is one stored number per client,
one Lua call, and exact across replicas.
"""

from lms_shared.ratelimit._errors import (
    PROBLEMS,
    RateLimited,
    RateLimitUnavailable,
    StorageUnavailable,
)
from lms_shared.ratelimit._limiter import RateLimiter
from lms_shared.ratelimit._memory import MemoryStorage
from lms_shared.ratelimit._policy import Decision, Quota, Rate, default_quota
from lms_shared.ratelimit._standing import Standing, current_standing
from lms_shared.ratelimit._storage import BACKENDS, RateLimitStorage, storage_from_url

__all__ = [
    "BACKENDS",
    "PROBLEMS",
    "Decision",
    "MemoryStorage",
    "Quota",
    "Rate",
    "RateLimitStorage",
    "RateLimitUnavailable",
    "RateLimited",
    "RateLimiter",
    "Standing",
    "StorageUnavailable",
    "current_standing",
    "default_quota",
    "storage_from_url",
]
