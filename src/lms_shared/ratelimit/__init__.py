"""Rate limiting: GCRA policies, pure ASGI middleware, memory and Redis storage.

* :class:`Policy` / :class:`Rate`: a named quota, ``Policy("login", Rate.parse("5/minute"))``;
* :class:`RateLimiter`: checks a key against a policy (``hit``, ``check``),
  with time from the service's :class:`~lms_shared.clock.Clock`;
* :class:`RateLimitMiddleware`: every request, the service default or the
  route's own (:func:`limit`, :func:`exempt`), ``RateLimit`` /
  ``RateLimit-Policy`` / ``Retry-After`` headers and 429 problems;
* :func:`rate_limited`: a FastAPI dependency for limits per verified
  principal (declared after the auth dependency);
* storage chosen by ``LMS_RATELIMIT_URL`` (:func:`storage_from_url`):
  :class:`MemoryStorage` by default, Redis (``redis://``) to share limits
  across replicas (``pip install 'lms-shared[redis]'``);
* key functions: principal, API key, client address (trusted proxies only).

Why not the ``limits`` package: its async Redis strategies count in
fixed or sliding *windows* with several round trips, read the wall clock
themselves (no injected Clock, so tests would sleep), and pull in a
second Redis client stack; GCRA here is one stored number per client,
one Lua call, and exact across replicas.
"""

from lms_shared.ratelimit._dependency import rate_limited
from lms_shared.ratelimit._keys import (
    KeyFunc,
    api_key_key,
    client_ip_key,
    key_chain,
    principal_key,
)
from lms_shared.ratelimit._limiter import RateLimited, RateLimiter, RateLimitUnavailable
from lms_shared.ratelimit._memory import MemoryStorage
from lms_shared.ratelimit._middleware import RateLimitMiddleware, RouteLimit, exempt, limit
from lms_shared.ratelimit._policy import Decision, Policy, Rate, default_policy
from lms_shared.ratelimit._storage import (
    BACKENDS,
    RateLimitStorage,
    StorageUnavailable,
    storage_from_url,
)

__all__ = [
    "BACKENDS",
    "Decision",
    "KeyFunc",
    "MemoryStorage",
    "Policy",
    "Rate",
    "RateLimitMiddleware",
    "RateLimitStorage",
    "RateLimitUnavailable",
    "RateLimited",
    "RateLimiter",
    "RouteLimit",
    "StorageUnavailable",
    "api_key_key",
    "client_ip_key",
    "default_policy",
    "exempt",
    "key_chain",
    "limit",
    "principal_key",
    "rate_limited",
    "storage_from_url",
]
