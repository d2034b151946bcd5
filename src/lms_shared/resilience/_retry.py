"""Retries: say what to retry on, back off with jitter, stay within the budget.

:class:`Retry` is a policy object made once per dependency and used for
every call (``await policy.call(fn, idempotent=True)``, or the
:func:`retry` decorator). A failed attempt is tried again only when all
of these hold:

* the call may be repeated (:func:`~lms_shared.resilience.may_retry`:
  idempotent or with an idempotency key, and no upstream hop retries it);
* the exception matches ``on=`` (classes or a predicate; required, as in
  stamina: a catch-all retry hides bugs and multiplies load);
* attempts are left;
* the delay fits: the backoff (full jitter), raised to the exception's
  ``retry_after`` when it has one (:class:`RetryAfter`), must end before
  the call's :class:`~lms_shared.resilience.Deadline` and within
  ``max_retry_after``;
* the :class:`~lms_shared.resilience.RetryBudget` grants a token.

Otherwise the last attempt's exception is re-raised unchanged: retries
never replace the caller's error with one of their own.

Why not tenacity (or stamina, which wraps it): measured on this machine
``AsyncRetrying`` adds about 30 µs to every successful call (a
``RetryCallState``, a copy of the policy and several strategy calls per
call), reads :func:`time.monotonic` itself for ``stop_after_delay``
(no injected clock), draws jitter from the global :mod:`random` and has
no shared budget. The loop here costs a ``try`` when the first attempt
succeeds (``bench/resilience.py``).
"""

from __future__ import annotations

import email.utils
import functools
import math
import random as _random
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ParamSpec, Protocol, TypeVar, cast, runtime_checkable

import structlog

from lms_shared.clock import Clock
from lms_shared.resilience._backoff import Backoff
from lms_shared.resilience._budget import RetryBudget
from lms_shared.resilience._gate import may_retry
from lms_shared.resilience._timeouts import Deadline

__all__ = ["Retry", "RetryAfter", "RetryEvent", "parse_retry_after", "retry", "retry_after_of"]

T = TypeVar("T")
P = ParamSpec("P")

RetryOn = type[BaseException] | tuple[type[BaseException], ...] | Callable[[BaseException], bool]

_log = structlog.get_logger(logger_name="lms.resilience")

_MAX_RETRY_AFTER = 64  # characters of a Retry-After value worth reading


@runtime_checkable
class RetryAfter(Protocol):
    """An exception that says when to try again (duck-typed).

    Any exception with a ``retry_after`` attribute holding seconds (an
    ``int`` or ``float`` >= 0, or ``None`` for "no opinion") is honoured:
    the next attempt waits at least that long. The HTTP client sets it
    from a 429/503 response's ``Retry-After`` header;
    :class:`~lms_shared.resilience.CircuitOpen` sets it to the breaker's
    remaining open time.
    """

    retry_after: float | None


def retry_after_of(exc: BaseException) -> float | None:
    """The ``retry_after`` seconds an exception asks for, or ``None``.

    Values that are not finite, non-negative numbers (``bool`` included)
    are ignored.
    """
    value = getattr(exc, "retry_after", None)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if not math.isfinite(value) or value < 0:
        return None
    return float(value)


def parse_retry_after(value: str | None, *, now: datetime) -> float | None:
    """Seconds a ``Retry-After`` header value asks to wait (RFC 9110 §10.2.3), or ``None``.

    For the HTTP client to set ``retry_after`` on the error it raises.
    Accepts delay-seconds (``"120"``) and an HTTP-date
    (``"Wed, 21 Oct 2026 07:28:00 GMT"``, read against ``now``; a date in
    the past is 0). Anything else, or a value longer than 64 characters
    (it is untrusted input), is ``None``: no opinion, plain backoff.

    Args:
        value: the header value, ``None`` when absent.
        now: the current wall time (the service clock's ``now()``).
    """
    if value is None or len(value) > _MAX_RETRY_AFTER:
        return None
    text = value.strip()
    if text.isascii() and text.isdigit():
        return float(int(text))
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # "-0000" dates: RFC 9110 dates are GMT
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


@dataclass(frozen=True, slots=True)
class RetryEvent:
    """What an ``on_retry`` listener is told before each retry's wait.

    Attributes:
        policy: the policy's name.
        attempt: the attempt that just failed (1 = the first).
        delay: seconds the policy waits before the next attempt.
        exception: the failure of that attempt.
    """

    policy: str
    attempt: int
    delay: float
    exception: BaseException


def _matcher(on: RetryOn) -> Callable[[BaseException], bool]:
    classes = on if isinstance(on, tuple) else (on,)
    if all(isinstance(c, type) and issubclass(c, BaseException) for c in classes) and classes:
        exact = cast(tuple[type[BaseException], ...], classes)
        return lambda exc: isinstance(exc, exact)
    if not isinstance(on, tuple | type) and callable(on):
        return on
    raise TypeError("retry on= needs exception classes, a tuple of them, or a predicate")


class Retry:
    """A retry policy for one dependency.

    Args:
        on: what to retry on: an exception class, a tuple of classes or a
            predicate ``(exception) -> bool``. Only :class:`Exception`
            subclasses are ever retried (never cancellation).
        clock: the service clock (backoff sleeps, budget windows, deadlines).
        attempts: attempts in total, the first included (1 = never retry).
        backoff: the delay before each retry.
        budget: shared cap on retries; ``None`` for none.
        max_retry_after: a ``retry_after`` longer than this many seconds
            ends the retries (the server asks for more than is worth waiting).
        random: returns floats in ``[0, 1)`` for the jitter.
        name: names the policy in events and logs.

    Raises:
        ValueError: ``attempts`` < 1 or a negative ``max_retry_after``.
        TypeError: ``on`` is neither classes nor a predicate.
    """

    __slots__ = (
        "_listeners",
        "_matches",
        "attempts",
        "backoff",
        "budget",
        "clock",
        "max_retry_after",
        "name",
        "random",
    )

    def __init__(
        self,
        *,
        on: RetryOn,
        clock: Clock,
        attempts: int = 3,
        backoff: Backoff | None = None,
        budget: RetryBudget | None = None,
        max_retry_after: float = 60.0,
        random: Callable[[], float] = _random.random,
        name: str = "default",
    ) -> None:
        if attempts < 1:
            raise ValueError(f"retry attempts must be >= 1, got {attempts}")
        if not max_retry_after >= 0:
            raise ValueError(f"max_retry_after must be >= 0 seconds, got {max_retry_after}")
        self._matches = _matcher(on)
        self.clock = clock
        self.attempts = attempts
        self.backoff = backoff or Backoff()
        self.budget = budget
        self.max_retry_after = max_retry_after
        self.random = random
        self.name = name
        self._listeners: list[Callable[[RetryEvent], object]] = []

    def __repr__(self) -> str:
        return f"Retry({self.name!r}, attempts={self.attempts}, budget={self.budget!r})"

    def on_retry(self, listener: Callable[[RetryEvent], object]) -> Callable[[], None]:
        """Call ``listener`` before each retry's wait; returns a function that removes it."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def next_delay(
        self, exc: BaseException, attempt: int, deadline: Deadline | None = None
    ) -> float | None:
        """Seconds to wait before retrying after ``attempt`` failed with ``exc``, or ``None``.

        ``None`` means give up (and re-raise ``exc``). A granted retry
        takes its token from the budget and is reported to the listeners.
        The caller has already checked that the call may be repeated.
        """
        if attempt >= self.attempts or not isinstance(exc, Exception) or not self._matches(exc):
            return None
        delay = self.backoff.delay(attempt, self.random)
        asked = retry_after_of(exc)
        if asked is not None:
            if asked > self.max_retry_after:
                return None
            delay = max(delay, asked)
        if deadline is not None and delay >= deadline.remaining():
            return None
        budget = self.budget
        if budget is not None and not budget.try_acquire():
            return None
        if self._listeners:
            self._notify(RetryEvent(self.name, attempt, delay, exc))
        return delay

    def _notify(self, event: RetryEvent) -> None:
        for listener in tuple(self._listeners):
            try:
                listener(event)
            except Exception:
                _log.exception("retry.listener_failed", policy=self.name)

    async def call(
        self,
        fn: Callable[[], Awaitable[T]],
        *,
        idempotent: bool,
        idempotency_key: bool = False,
        upstream_retrying: bool = False,
        deadline: Deadline | None = None,
    ) -> T:
        """Await ``fn()``, retrying it as the policy allows.

        Args:
            fn: makes a fresh awaitable per attempt (``lambda: fetch(id)``).
            idempotent: repeating the call cannot do its work twice.
            idempotency_key: the call carries a key the callee deduplicates on.
            upstream_retrying: a hop further up retries this request
                (:func:`~lms_shared.resilience.upstream_retries`): never retry.
            deadline: the call's total budget; no retry sleeps past it.

        Raises:
            Exception: the last attempt's exception, unchanged.
        """
        allowed = may_retry(
            idempotent=idempotent, idempotency_key=idempotency_key, upstream=upstream_retrying
        )
        if self.budget is not None:
            self.budget.record_request()
        attempt = 1
        while True:
            try:
                return await fn()
            except Exception as exc:
                if not allowed:
                    raise
                delay = self.next_delay(exc, attempt, deadline)
                if delay is None:
                    raise
            attempt += 1
            await self.clock.sleep(delay)


def retry(
    policy: Retry, *, idempotent: bool, idempotency_key: bool = False
) -> Callable[[Callable[P, Awaitable[T]]], Callable[P, Coroutine[Any, Any, T]]]:
    """Decorate a coroutine function so every call goes through ``policy``.

    Example::

        @retry(Retry(on=asyncpg.PostgresConnectionError, clock=clock), idempotent=True)
        async def course(course_id: UUID) -> Course: ...

    Args:
        policy: the retry policy.
        idempotent: calls of the function can be repeated safely.
        idempotency_key: the calls carry an idempotency key.
    """

    def decorate(fn: Callable[P, Awaitable[T]]) -> Callable[P, Coroutine[Any, Any, T]]:
        @functools.wraps(fn)
        async def retried(*args: P.args, **kwargs: P.kwargs) -> T:
            return await policy.call(
                lambda: fn(*args, **kwargs),
                idempotent=idempotent,
                idempotency_key=idempotency_key,
            )

        return retried

    return decorate
