"""Resilience for any async call: retries, breakers, timeouts, bulkheads, hedging.

Nothing here knows HTTP: every part wraps an async callable (a query, a
publish, an HTTP call) and takes the service's
:class:`~lms_shared.clock.Clock`, so tests drive time with
:class:`~lms_shared.testing.ManualClock`.

* :class:`Retry` (and :func:`retry`): say what to retry on; exponential
  backoff with full jitter (:class:`Backoff`); only calls that are
  idempotent or carry an idempotency key; ``retry_after`` honoured
  (:class:`RetryAfter`, :func:`parse_retry_after`); a shared :class:`RetryBudget` caps retries at a
  share of traffic; :data:`RETRY_HOP_HEADER` lets one hop retry;
* :class:`CircuitBreaker` (:class:`BreakerConfig`): Resilience4j's state
  machine, knobs and metrics; :class:`BreakerRegistry` per service and
  per instance; :class:`SharedBreakerState` opens a breaker
  cluster-wide when a quorum of replicas tripped (Redis);
* :func:`call_with_timeout` and :class:`Deadline`: per attempt and in total;
* :class:`Bulkhead`, :class:`AdaptiveLimit`: concurrency per dependency,
  fixed with a queue, or following latency;
* :class:`Hedge`: a second call for slow idempotent reads;
* :class:`Fallback`: the answer of last resort;
* :class:`Resilience`: all of them composed in the right order, with a
  fast path for retry + breaker.

Resilience never swallows: after the last attempt the caller's own
exception surfaces; the package's own decisions are typed
(:class:`CircuitOpen`, :class:`BulkheadFull`, :class:`ConcurrencyLimited`,
:class:`AttemptTimeout`, :class:`DeadlineExceeded`; problem codes in
:data:`PROBLEMS`).
"""

from lms_shared.resilience._adaptive import AdaptiveLimit, AdaptiveMetrics
from lms_shared.resilience._backoff import Backoff
from lms_shared.resilience._breaker import (
    BreakerConfig,
    BreakerMetrics,
    BreakerState,
    CircuitBreaker,
    SlidingWindowType,
    StateChange,
)
from lms_shared.resilience._budget import BudgetMetrics, RetryBudget
from lms_shared.resilience._bulkhead import Bulkhead, BulkheadMetrics
from lms_shared.resilience._errors import (
    PROBLEMS,
    AttemptTimeout,
    BulkheadFull,
    CircuitOpen,
    ConcurrencyLimited,
    DeadlineExceeded,
    ResilienceError,
    ResilienceTimeout,
    SharedStateUnavailable,
)
from lms_shared.resilience._fallback import Fallback
from lms_shared.resilience._gate import (
    IDEMPOTENT_METHODS,
    RETRY_HOP_HEADER,
    is_idempotent_method,
    may_retry,
    retry_hop_value,
    upstream_retries,
)
from lms_shared.resilience._hedging import Hedge
from lms_shared.resilience._policy import Resilience
from lms_shared.resilience._registry import BreakerRegistry
from lms_shared.resilience._retry import (
    Retry,
    RetryAfter,
    RetryEvent,
    parse_retry_after,
    retry,
    retry_after_of,
)
from lms_shared.resilience._shared import ClusterView, SharedBreakerState
from lms_shared.resilience._timeouts import Deadline, call_with_timeout

__all__ = [
    "IDEMPOTENT_METHODS",
    "PROBLEMS",
    "RETRY_HOP_HEADER",
    "AdaptiveLimit",
    "AdaptiveMetrics",
    "AttemptTimeout",
    "Backoff",
    "BreakerConfig",
    "BreakerMetrics",
    "BreakerRegistry",
    "BreakerState",
    "BudgetMetrics",
    "Bulkhead",
    "BulkheadFull",
    "BulkheadMetrics",
    "CircuitBreaker",
    "CircuitOpen",
    "ClusterView",
    "ConcurrencyLimited",
    "Deadline",
    "DeadlineExceeded",
    "Fallback",
    "Hedge",
    "Resilience",
    "ResilienceError",
    "ResilienceTimeout",
    "Retry",
    "RetryAfter",
    "RetryBudget",
    "RetryEvent",
    "SharedBreakerState",
    "SharedStateUnavailable",
    "SlidingWindowType",
    "StateChange",
    "call_with_timeout",
    "is_idempotent_method",
    "may_retry",
    "parse_retry_after",
    "retry",
    "retry_after_of",
    "retry_hop_value",
    "upstream_retries",
]
