"""Who may retry a call: idempotency, idempotency keys, and one retrying hop.

Two rules decide whether a failed call may be sent again:

1. **Only safe repeats.** A call is retried only when repeating it cannot
   do the work twice: it is idempotent (a read, a ``PUT``, a ``DELETE``,
   a query, an upsert) or it carries an idempotency key the callee
   deduplicates on. The caller says which (``idempotent=``,
   ``idempotency_key=`` on :meth:`Retry.call`); nothing is guessed.
2. **One hop retries.** In a chain ``A -> B -> C`` where ``C`` fails, ``A``
   retrying 3 times and ``B`` retrying 3 times sends ``C`` nine calls.
   A hop that will retry a request marks it with :data:`RETRY_HOP_HEADER`;
   the callee sees the mark (:func:`upstream_retries`) and does not retry
   its own calls for that request, and passes the mark on
   (:func:`retry_hop_value`) so no hop further down retries either. The
   outermost hop able to retry is the only one that does.

These are pure functions over strings: the HTTP client and middleware
apply them (read the incoming header, set the outgoing one).
"""

from __future__ import annotations

__all__ = [
    "IDEMPOTENT_METHODS",
    "RETRY_HOP_HEADER",
    "is_idempotent_method",
    "may_retry",
    "retry_hop_value",
    "upstream_retries",
]

RETRY_HOP_HEADER = "x-lms-retry-hop"
"""Set on a request whose caller (or a caller further up) retries it."""

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})
"""The HTTP methods RFC 9110 (section 9.2.2) defines as idempotent."""


def is_idempotent_method(method: str) -> bool:
    """Whether an HTTP method is idempotent by definition (RFC 9110 §9.2.2)."""
    return method.upper() in IDEMPOTENT_METHODS


def upstream_retries(value: str | None) -> bool:
    """Whether an incoming request's :data:`RETRY_HOP_HEADER` says a caller retries it.

    Args:
        value: the header's value, ``None`` when absent. Any present value
            (even malformed or empty) counts as the mark: failing towards
            "do not retry here" is the safe side.
    """
    return value is not None


def retry_hop_value(*, upstream: bool, retrying: bool) -> str | None:
    """The :data:`RETRY_HOP_HEADER` value for an outgoing request, or ``None`` for none.

    Args:
        upstream: the incoming request carried the mark
            (:func:`upstream_retries`).
        retrying: this hop may retry the outgoing call.
    """
    return "1" if upstream or retrying else None


def may_retry(*, idempotent: bool, idempotency_key: bool = False, upstream: bool = False) -> bool:
    """The retry rule in one place: safe to repeat, and no upstream hop retries.

    Args:
        idempotent: repeating the call cannot do its work twice.
        idempotency_key: the call carries a key the callee deduplicates on.
        upstream: a hop further up retries this request already.
    """
    return (idempotent or idempotency_key) and not upstream
