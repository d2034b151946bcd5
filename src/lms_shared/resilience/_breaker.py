"""The circuit breaker, with Resilience4j's knobs and semantics.

Teams coming from Spring find the same state machine, names (in
snake_case) and defaults as ``io.github.resilience4j.circuitbreaker``:

* ``CLOSED``: calls pass and are recorded in a sliding window (the last
  ``sliding_window_size`` calls, or the calls of the last
  ``sliding_window_size`` seconds). Once the window holds at least
  ``minimum_number_of_calls`` (capped at the window size when count
  based), the breaker opens when the failure rate **or** the slow-call
  rate is *equal to or greater than* its threshold. A call is slow when
  it takes *strictly longer* than ``slow_call_duration_threshold``.
* ``OPEN``: calls are rejected with :class:`CircuitOpen` (and counted as
  not permitted) for ``wait_duration_in_open_state`` seconds; then the
  next call moves the breaker to ``HALF_OPEN``, or a timer does it by
  itself when ``automatic_transition_from_open_to_half_open_enabled``.
* ``HALF_OPEN``: ``permitted_number_of_calls_in_half_open_state`` probes
  pass, others are rejected; once they are recorded the breaker closes
  (both rates below their thresholds) or opens again. With
  ``max_wait_duration_in_half_open_state`` > 0 it opens again when the
  probes take longer than that.
* ``DISABLED`` (always permits, records nothing), ``FORCED_OPEN`` (always
  rejects) and ``METRICS_ONLY`` (always permits, records, never changes
  state) are entered and left only by the ``transition_to_*`` methods.

Every transition starts a fresh window, except into ``OPEN``, which keeps
the window that tripped it (so the metrics show why). Exceptions count as
failures unless ignored (``ignore_exceptions``, ``ignore_exception_predicate``:
neither failure nor success); when ``record_exceptions`` or
``record_failure_predicate`` is given, only what they match is a failure
and other exceptions count as successes. Cancellation is never recorded.

One deliberate difference: a call that started before the breaker went
``HALF_OPEN`` is not counted as one of the probes when it ends late.

State changes are logged (``circuit_breaker.state_changed`` on the
``lms.resilience`` logger) and given to :meth:`CircuitBreaker.on_state_change`
listeners. All times come from the injected clock's ``monotonic()``.
"""

from __future__ import annotations

import asyncio
import enum
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import structlog

from lms_shared.clock import Clock
from lms_shared.resilience._errors import CircuitOpen
from lms_shared.resilience._timeouts import sleep_until
from lms_shared.resilience._window import FAILED, SLOW, CountWindow, TimeWindow, Window

__all__ = [
    "BreakerConfig",
    "BreakerMetrics",
    "BreakerState",
    "CircuitBreaker",
    "SlidingWindowType",
    "StateChange",
]

T = TypeVar("T")

_log = structlog.get_logger(logger_name="lms.resilience")

_IGNORED = -1


class BreakerState(enum.StrEnum):
    """The states of a circuit breaker (Resilience4j's ``CircuitBreaker.State``)."""

    CLOSED = "CLOSED"
    OPEN = "OPEN"
    HALF_OPEN = "HALF_OPEN"
    DISABLED = "DISABLED"
    FORCED_OPEN = "FORCED_OPEN"
    METRICS_ONLY = "METRICS_ONLY"


# module constants: a member looked up on an Enum class costs ~0.1 µs on Python 3.11
_CLOSED = BreakerState.CLOSED
_OPEN = BreakerState.OPEN
_HALF_OPEN = BreakerState.HALF_OPEN
_DISABLED = BreakerState.DISABLED
_FORCED_OPEN = BreakerState.FORCED_OPEN
_METRICS_ONLY = BreakerState.METRICS_ONLY


class SlidingWindowType(enum.StrEnum):
    """How the closed state's window is bounded: by calls or by seconds."""

    COUNT_BASED = "COUNT_BASED"
    TIME_BASED = "TIME_BASED"


ExceptionPredicate = Callable[[BaseException], bool]


@dataclass(frozen=True, slots=True)
class BreakerConfig:
    """A breaker's knobs: Resilience4j's names in snake_case, its defaults, seconds for durations.

    Attributes:
        failure_rate_threshold: percent (0-100]; opens when the failure
            rate is equal or greater.
        slow_call_rate_threshold: percent (0-100]; opens when the rate of
            slow calls is equal or greater.
        slow_call_duration_threshold: seconds; a call taking strictly
            longer is slow.
        sliding_window_type: count based (last N calls) or time based
            (last N seconds).
        sliding_window_size: N calls, or N seconds.
        minimum_number_of_calls: calls the window must hold before the
            rates are computed (capped at the size of a count-based window).
        wait_duration_in_open_state: seconds the breaker stays open.
        permitted_number_of_calls_in_half_open_state: probes in half-open.
        max_wait_duration_in_half_open_state: seconds half-open may last
            before opening again; 0 waits for the probes however long.
        automatic_transition_from_open_to_half_open_enabled: a timer moves
            the breaker to half-open after the wait, without a call.
        record_exceptions: exceptions that are failures (all, when neither
            this nor ``record_failure_predicate`` is given).
        ignore_exceptions: exceptions that are neither failure nor success.
        record_failure_predicate: ``(exception) -> bool``, ORed with
            ``record_exceptions``.
        ignore_exception_predicate: ``(exception) -> bool``, ORed with
            ``ignore_exceptions``.
        record_result_predicate: ``(result) -> bool``; a returned value it
            accepts is recorded as a failure (a 503 response object, say).

    Raises:
        ValueError: a threshold outside (0, 100], a size below 1, a
            non-positive duration or a negative half-open wait.
    """

    failure_rate_threshold: float = 50.0
    slow_call_rate_threshold: float = 100.0
    slow_call_duration_threshold: float = 60.0
    sliding_window_type: SlidingWindowType = SlidingWindowType.COUNT_BASED
    sliding_window_size: int = 100
    minimum_number_of_calls: int = 100
    wait_duration_in_open_state: float = 60.0
    permitted_number_of_calls_in_half_open_state: int = 10
    max_wait_duration_in_half_open_state: float = 0.0
    automatic_transition_from_open_to_half_open_enabled: bool = False
    record_exceptions: tuple[type[BaseException], ...] = ()
    ignore_exceptions: tuple[type[BaseException], ...] = ()
    record_failure_predicate: ExceptionPredicate | None = None
    ignore_exception_predicate: ExceptionPredicate | None = None
    record_result_predicate: Callable[[Any], bool] | None = None

    def __post_init__(self) -> None:
        for knob in ("failure_rate_threshold", "slow_call_rate_threshold"):
            value = getattr(self, knob)
            if not 0 < value <= 100:
                raise ValueError(f"{knob} must be greater than 0 and at most 100, got {value}")
        for knob in (
            "sliding_window_size",
            "minimum_number_of_calls",
            "permitted_number_of_calls_in_half_open_state",
        ):
            value = getattr(self, knob)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{knob} must be an integer >= 1, got {value!r}")
        for knob in ("slow_call_duration_threshold", "wait_duration_in_open_state"):
            value = getattr(self, knob)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{knob} must be a positive number of seconds, got {value}")
        half_open = self.max_wait_duration_in_half_open_state
        if not (math.isfinite(half_open) and half_open >= 0):
            raise ValueError(
                f"max_wait_duration_in_half_open_state must be >= 0 seconds, got {half_open}"
            )
        object.__setattr__(self, "sliding_window_type", SlidingWindowType(self.sliding_window_type))
        for knob in ("record_exceptions", "ignore_exceptions"):
            classes = tuple(getattr(self, knob))
            if not all(isinstance(c, type) and issubclass(c, BaseException) for c in classes):
                raise ValueError(f"{knob} must hold exception classes, got {classes!r}")
            object.__setattr__(self, knob, classes)


@dataclass(frozen=True, slots=True)
class BreakerMetrics:
    """A snapshot of a breaker (Resilience4j's ``CircuitBreaker.Metrics``).

    Rates are percentages, ``-1.0`` while the window holds fewer than the
    minimum number of calls (as in Resilience4j).

    Attributes:
        name: the breaker's name.
        state: its state.
        failure_rate: failed calls in percent of the buffered calls.
        slow_call_rate: slow calls in percent of the buffered calls.
        successful_calls: buffered calls that succeeded (slow or not).
        failed_calls: buffered calls that failed (slow or not).
        slow_calls: buffered calls slower than the threshold.
        slow_successful_calls: slow calls that succeeded.
        slow_failed_calls: slow calls that failed.
        buffered_calls: calls in the window.
        not_permitted_calls: calls rejected since the window started.
        cluster_open: the shared state (a quorum of replicas) holds it open.
    """

    name: str
    state: BreakerState
    failure_rate: float
    slow_call_rate: float
    successful_calls: int
    failed_calls: int
    slow_calls: int
    slow_successful_calls: int
    slow_failed_calls: int
    buffered_calls: int
    not_permitted_calls: int
    cluster_open: bool


@dataclass(frozen=True, slots=True)
class StateChange:
    """What :meth:`CircuitBreaker.on_state_change` listeners receive.

    Attributes:
        breaker: the breaker's name.
        from_state: the state left.
        to_state: the state entered.
        metrics: the metrics as the transition happened (of the window
            that decided it, for a trip).
    """

    breaker: str
    from_state: BreakerState
    to_state: BreakerState
    metrics: BreakerMetrics


def _classifier(config: BreakerConfig) -> Callable[[BaseException], int]:
    """``exception -> FAILED (1), success (0) or _IGNORED (-1)``."""
    record_classes, ignore_classes = config.record_exceptions, config.ignore_exceptions
    record_if, ignore_if = config.record_failure_predicate, config.ignore_exception_predicate
    record_all = not record_classes and record_if is None

    def classify(exc: BaseException) -> int:
        if (ignore_classes and isinstance(exc, ignore_classes)) or (
            ignore_if is not None and ignore_if(exc)
        ):
            return _IGNORED
        if record_all:
            return FAILED
        if (record_classes and isinstance(exc, record_classes)) or (
            record_if is not None and record_if(exc)
        ):
            return FAILED
        return 0

    return classify


class CircuitBreaker:
    """A circuit breaker for one dependency (a service, an instance, a database).

    Use :meth:`call` for an async callable, or, on a hot path that holds
    the call itself, :meth:`acquire` then exactly one of
    :meth:`on_success`, :meth:`on_error` or :meth:`release`.

    Args:
        name: names the breaker in errors, logs and metrics.
        config: the knobs (Resilience4j's defaults when omitted).
        clock: the service clock.
    """

    __slots__ = (
        "_classify",
        "_cluster_until",
        "_evaluating",
        "_failure_threshold",
        "_generation",
        "_listeners",
        "_minimum",
        "_monotonic",
        "_not_permitted",
        "_open_until",
        "_permits",
        "_permitting",
        "_recording",
        "_result_failure",
        "_settled",
        "_since",
        "_slow_duration",
        "_slow_threshold",
        "_state",
        "_timer",
        "_window",
        "clock",
        "config",
        "name",
    )

    _window: Window

    def __init__(self, name: str, config: BreakerConfig | None = None, *, clock: Clock) -> None:
        self.name = name
        self.config = config = config or BreakerConfig()
        self.clock = clock
        self._monotonic = clock.monotonic
        self._classify = _classifier(config)
        self._result_failure = config.record_result_predicate
        self._failure_threshold = config.failure_rate_threshold
        self._slow_threshold = config.slow_call_rate_threshold
        self._slow_duration = config.slow_call_duration_threshold
        self._listeners: list[Callable[[StateChange], object]] = []
        self._timer: asyncio.Task[None] | None = None
        self._generation = 0
        self._cluster_until = 0.0
        self._open_until = 0.0
        self._permits = 0
        now = clock.monotonic()
        self._enter(_CLOSED, now)

    def __repr__(self) -> str:
        return f"CircuitBreaker({self.name!r}, state={self._state.value})"

    # -- state ---------------------------------------------------------------

    @property
    def state(self) -> BreakerState:
        """The current state."""
        return self._state

    @property
    def open_remaining(self) -> float:
        """Seconds until an ``OPEN`` breaker lets probes through; 0.0 in any other state."""
        if self._state is not _OPEN:
            return 0.0
        return max(0.0, self._open_until - self.clock.monotonic())

    @property
    def cluster_open(self) -> bool:
        """Whether the shared state holds this breaker open cluster-wide."""
        return self._cluster_until > self.clock.monotonic()

    def _closed_window(self, now: float) -> Window:
        config = self.config
        if config.sliding_window_type is SlidingWindowType.TIME_BASED:
            self._minimum = config.minimum_number_of_calls
            return TimeWindow(config.sliding_window_size, now)
        self._minimum = min(config.minimum_number_of_calls, config.sliding_window_size)
        return CountWindow(config.sliding_window_size)

    def _enter(self, state: BreakerState, now: float) -> None:
        config = self.config
        self._state = state
        self._since = now
        self._generation += 1
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if state is _OPEN:
            wait = config.wait_duration_in_open_state
            self._open_until = now + wait
            if config.automatic_transition_from_open_to_half_open_enabled:
                self._schedule(wait, _HALF_OPEN)
        else:
            self._not_permitted = 0
            if state is _HALF_OPEN:
                permitted = config.permitted_number_of_calls_in_half_open_state
                self._window = CountWindow(permitted)
                self._minimum = min(config.minimum_number_of_calls, permitted)
                self._permits = permitted
                if config.max_wait_duration_in_half_open_state > 0:
                    self._schedule(config.max_wait_duration_in_half_open_state, _OPEN)
            elif state in (_CLOSED, _METRICS_ONLY):
                self._window = self._closed_window(now)
            else:  # DISABLED, FORCED_OPEN: nothing is recorded
                self._window = CountWindow(1)
                self._minimum = 1
        self._settled = False
        self._recording = state not in (_DISABLED, _FORCED_OPEN)
        self._evaluating = state in (_CLOSED, _HALF_OPEN)
        self._gate()

    def _gate(self) -> None:
        state = self._state
        self._permitting = state in (_DISABLED, _METRICS_ONLY) or (
            state is _CLOSED and not self._cluster_until
        )

    def _transition(self, to: BreakerState, now: float) -> None:
        old = self._state
        if old is to:
            return
        self._enter(to, now)
        snapshot = self.metrics()
        log = _log.warning if to in (_OPEN, _FORCED_OPEN) else _log.info
        log(
            "circuit_breaker.state_changed",
            breaker=self.name,
            from_state=old.value,
            to_state=to.value,
            failure_rate=snapshot.failure_rate,
            slow_call_rate=snapshot.slow_call_rate,
            buffered_calls=snapshot.buffered_calls,
        )
        if self._listeners:
            change = StateChange(self.name, old, to, snapshot)
            for listener in tuple(self._listeners):
                try:
                    listener(change)
                except Exception:
                    _log.exception("circuit_breaker.listener_failed", breaker=self.name)

    def _schedule(self, delay: float, target: BreakerState) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop (a transition made by hand): the next call decides
            return
        due = self.clock.monotonic() + delay
        self._timer = loop.create_task(self._fire(due, target, self._generation))

    async def _fire(self, due: float, target: BreakerState, generation: int) -> None:
        await sleep_until(self.clock, due)
        if self._generation == generation:
            self._timer = None
            self._transition(target, self.clock.monotonic())

    def on_state_change(self, listener: Callable[[StateChange], object]) -> Callable[[], None]:
        """Call ``listener`` on every state change; returns a function that removes it.

        Listeners run synchronously inside the call that caused the change:
        keep them short (count, set a flag, enqueue). An exception they
        raise is logged and does not reach the call.
        """
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    # -- manual transitions (Resilience4j's transitionTo*State) ---------------

    def transition_to_closed_state(self) -> None:
        """Close the breaker (a fresh window)."""
        self._transition(_CLOSED, self.clock.monotonic())

    def transition_to_open_state(self) -> None:
        """Open the breaker for ``wait_duration_in_open_state``."""
        self._transition(_OPEN, self.clock.monotonic())

    def transition_to_half_open_state(self) -> None:
        """Let the half-open probes through now."""
        self._transition(_HALF_OPEN, self.clock.monotonic())

    def transition_to_disabled_state(self) -> None:
        """Permit every call and record nothing, until another transition."""
        self._transition(_DISABLED, self.clock.monotonic())

    def transition_to_forced_open_state(self) -> None:
        """Reject every call, until another transition."""
        self._transition(_FORCED_OPEN, self.clock.monotonic())

    def transition_to_metrics_only_state(self) -> None:
        """Permit every call and record it, without ever changing state."""
        self._transition(_METRICS_ONLY, self.clock.monotonic())

    def reset(self) -> None:
        """Back to a fresh ``CLOSED`` breaker (from any state, even ``CLOSED``)."""
        old = self._state
        self._enter(_CLOSED, self.clock.monotonic())
        if old is not _CLOSED:
            _log.info("circuit_breaker.reset", breaker=self.name, from_state=old.value)

    def set_cluster_open(self, seconds: float | None) -> None:
        """Hold the breaker open cluster-wide for ``seconds`` (``None`` releases it).

        Called by :class:`~lms_shared.resilience.SharedBreakerState`; the
        local state is untouched, calls are rejected as not permitted.
        ``DISABLED`` and ``METRICS_ONLY`` breakers still permit every call.
        """
        before = self._cluster_until > self.clock.monotonic()
        if seconds is None or seconds <= 0:
            self._cluster_until = 0.0
        else:
            self._cluster_until = self.clock.monotonic() + seconds
        self._gate()
        if before != bool(self._cluster_until):
            event = "cluster_open" if self._cluster_until else "cluster_closed"
            _log.warning(f"circuit_breaker.{event}", breaker=self.name)

    def close(self) -> None:
        """Cancel the pending automatic transition, if any (the next call decides)."""
        timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()

    async def aclose(self) -> None:
        """:meth:`close`, and wait until the timer task has ended."""
        timer = self._timer
        self.close()
        if timer is not None:
            await asyncio.gather(timer, return_exceptions=True)

    # -- calls ---------------------------------------------------------------

    def _reject(self, retry_after: float | None) -> CircuitOpen:
        self._not_permitted += 1
        return CircuitOpen(self.name, self._state.value, retry_after)

    def acquire(self) -> float:
        """Ask for permission to make one call; returns its start time.

        Raises:
            CircuitOpen: the call is not permitted (counted as such).
        """
        now = self._monotonic()
        if self._permitting:
            return now
        state = self._state
        if state is _DISABLED or state is _METRICS_ONLY:
            return now
        if state is _FORCED_OPEN:
            raise self._reject(None)
        if self._cluster_until:
            if self._cluster_until > now:
                raise self._reject(self._cluster_until - now)
            self._cluster_until = 0.0
            self._gate()
        if state is _OPEN:
            if now < self._open_until:
                raise self._reject(self._open_until - now)
            self._transition(_HALF_OPEN, now)
            state = self._state
        if state is _HALF_OPEN:
            max_wait = self.config.max_wait_duration_in_half_open_state
            if max_wait > 0 and now - self._since >= max_wait:
                self._transition(_OPEN, now)
                raise self._reject(self.config.wait_duration_in_open_state)
            if self._permits <= 0:
                raise self._reject(None)
            self._permits -= 1
        return now

    def release(self, started: float) -> None:
        """End a permitted call without an outcome (cancelled, or an ignored exception)."""
        if self._state is _HALF_OPEN and started >= self._since:
            self._permits += 1

    def on_success(self, started: float, result: object = None) -> None:
        """Record a call that returned (``result`` feeds ``record_result_predicate``)."""
        if not self._recording:
            return
        now = self._monotonic()
        outcome = SLOW if now - started > self._slow_duration else 0
        if self._result_failure is not None and self._result_failure(result):
            outcome |= FAILED
        self._record(outcome, now, started)

    def on_error(self, exc: BaseException, started: float) -> None:
        """Record a call that raised ``exc`` (a failure, a success or ignored)."""
        if not self._recording:
            return
        failed = self._classify(exc)
        if failed == _IGNORED:
            self.release(started)
            return
        now = self._monotonic()
        outcome = SLOW | failed if now - started > self._slow_duration else failed
        self._record(outcome, now, started)

    def _record(self, outcome: int, now: float, started: float) -> None:
        window = self._window
        if not outcome and self._settled:
            # a plain success in a count window that already holds the minimum
            # cannot raise either rate: nothing to evaluate
            window.record(0, now)
            return
        state = self._state
        if state is _HALF_OPEN and started < self._since:
            return  # began before the probes: not one of them
        window.record(outcome, now)
        if not self._evaluating:
            return
        total = window.total
        if total < self._minimum:
            return
        if (
            window.failed * 100 >= self._failure_threshold * total
            or window.slow * 100 >= self._slow_threshold * total
        ):
            self._transition(_OPEN, now)
        elif state is _HALF_OPEN:
            self._transition(_CLOSED, now)
        elif type(window) is CountWindow:
            self._settled = True

    async def call(self, fn: Callable[[], Awaitable[T]]) -> T:
        """Await ``fn()`` if the breaker permits it, and record the outcome.

        Raises:
            CircuitOpen: the call is not permitted (``fn`` is not called).
            Exception: whatever ``fn`` raised, unchanged.
        """
        started = self.acquire()
        try:
            result = await fn()
        except Exception as exc:
            self.on_error(exc, started)
            raise
        except BaseException:
            self.release(started)
            raise
        self.on_success(started, result)
        return result

    # -- metrics -------------------------------------------------------------

    def metrics(self) -> BreakerMetrics:
        """The current state and the numbers of the current window."""
        now = self.clock.monotonic()
        window = self._window
        window.refresh(now)
        total = window.total
        enough = total > 0 and total >= self._minimum
        return BreakerMetrics(
            name=self.name,
            state=self._state,
            failure_rate=window.failed * 100 / total if enough else -1.0,
            slow_call_rate=window.slow * 100 / total if enough else -1.0,
            successful_calls=total - window.failed,
            failed_calls=window.failed,
            slow_calls=window.slow,
            slow_successful_calls=window.slow - window.slow_failed,
            slow_failed_calls=window.slow_failed,
            buffered_calls=total,
            not_permitted_calls=self._not_permitted,
            cluster_open=self._cluster_until > now,
        )
