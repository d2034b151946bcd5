"""The composed pipeline: the parts in the right order, the fast path and the full one."""

from __future__ import annotations

import asyncio

import pytest

from lms_shared.resilience import (
    AdaptiveLimit,
    AttemptTimeout,
    Backoff,
    BreakerConfig,
    BreakerState,
    Bulkhead,
    CircuitBreaker,
    CircuitOpen,
    DeadlineExceeded,
    Fallback,
    Hedge,
    Resilience,
    Retry,
    RetryBudget,
)
from lms_shared.testing import ManualClock


class Callee:
    """Fails the first ``failures`` calls, each after ``seconds`` of clock time."""

    def __init__(self, clock: ManualClock, failures: int = 0, seconds: float = 0.0) -> None:
        self.clock = clock
        self.failures = failures
        self.seconds = seconds
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.seconds:
            await self.clock.sleep(self.seconds)
        if self.calls <= self.failures:
            raise ConnectionError(f"failure {self.calls}")
        return f"answer {self.calls}"


def retry(clock: ManualClock, **options: object) -> Retry:
    defaults: dict[str, object] = {
        "on": (ConnectionError, AttemptTimeout),
        "backoff": Backoff(initial=1, maximum=1, jitter=False),
    }
    return Retry(clock=clock, **{**defaults, **options})  # type: ignore[arg-type]


def small_breaker(clock: ManualClock, **options: object) -> CircuitBreaker:
    config = BreakerConfig(sliding_window_size=4, minimum_number_of_calls=4, **options)  # type: ignore[arg-type]
    return CircuitBreaker("identity", config, clock=clock)


async def test_the_fast_path_retries_and_records_every_attempt(clock: ManualClock) -> None:
    clock.auto_advance = True
    breaker = CircuitBreaker("identity", BreakerConfig(sliding_window_size=10), clock=clock)
    budget = RetryBudget(clock=clock)
    pipeline = Resilience(
        "identity", clock=clock, retry=retry(clock, budget=budget), breaker=breaker
    )
    callee = Callee(clock, failures=2)
    assert await pipeline.call(callee, idempotent=True) == "answer 3"
    metrics = breaker.metrics()
    assert (metrics.buffered_calls, metrics.failed_calls) == (3, 2)
    assert (budget.metrics().requests, budget.metrics().retries) == (1, 2)


async def test_without_retry_the_error_surfaces_at_once(clock: ManualClock) -> None:
    pipeline = Resilience("identity", clock=clock, breaker=small_breaker(clock))
    callee = Callee(clock, failures=1)
    with pytest.raises(ConnectionError, match="failure 1"):
        await pipeline.call(callee, idempotent=True)
    assert callee.calls == 1
    bare = Resilience("identity", clock=clock)
    assert await bare.call(callee, idempotent=True) == "answer 2"


async def test_a_breaker_opening_mid_retries_ends_them(clock: ManualClock) -> None:
    clock.auto_advance = True
    breaker = small_breaker(clock)
    pipeline = Resilience("identity", clock=clock, retry=retry(clock, attempts=10), breaker=breaker)
    callee = Callee(clock, failures=100)
    with pytest.raises(CircuitOpen):
        await pipeline.call(callee, idempotent=True)
    assert callee.calls == 4  # the fifth attempt was not permitted
    assert breaker.state is BreakerState.OPEN


async def test_retrying_on_circuit_open_waits_for_its_retry_after(clock: ManualClock) -> None:
    clock.auto_advance = True
    breaker = small_breaker(clock, wait_duration_in_open_state=5)
    pipeline = Resilience(
        "identity",
        clock=clock,
        retry=retry(clock, on=(ConnectionError, CircuitOpen), attempts=6),
        breaker=breaker,
    )
    callee = Callee(clock, failures=4)
    assert await pipeline.call(callee, idempotent=True) == "answer 5"
    # four backoffs; the fifth attempt is rejected: wait the breaker's remaining 4 s
    assert clock.slept == [1, 1, 1, 1, 4]
    assert breaker.state is BreakerState.HALF_OPEN


async def test_a_non_idempotent_call_is_not_retried_by_the_pipeline(clock: ManualClock) -> None:
    pipeline = Resilience("identity", clock=clock, retry=retry(clock), breaker=small_breaker(clock))
    callee = Callee(clock, failures=1)
    with pytest.raises(ConnectionError):
        await pipeline.call(callee, idempotent=False)
    with pytest.raises(ConnectionError):
        await pipeline.call(Callee(clock, failures=1), idempotent=True, upstream_retrying=True)
    assert callee.calls == 1
    clock.auto_advance = True
    keyed = Callee(clock, failures=1)
    assert await pipeline.call(keyed, idempotent=False, idempotency_key=True) == "answer 2"


async def test_an_attempt_timeout_is_retried_and_recorded(clock: ManualClock) -> None:
    breaker = small_breaker(clock, slow_call_duration_threshold=1.0)
    pipeline = Resilience(
        "identity", clock=clock, retry=retry(clock), breaker=breaker, attempt_timeout=2.0
    )
    slow_then_fast = [10.0, 0.5]

    async def callee() -> str:
        await clock.sleep(slow_then_fast.pop(0))
        return "fast enough"

    task = asyncio.create_task(pipeline.call(callee, idempotent=True))
    for step in (2.0, 1.0, 0.5):  # the timeout, the backoff, the answer
        await asyncio.sleep(0)
        await clock.advance(step)
    assert await task == "fast enough"
    metrics = breaker.metrics()
    assert (metrics.failed_calls, metrics.slow_failed_calls, metrics.buffered_calls) == (1, 1, 2)


async def test_the_total_timeout_bounds_attempts_and_sleeps(clock: ManualClock) -> None:
    pipeline = Resilience(
        "identity",
        clock=clock,
        retry=retry(clock, attempts=100, backoff=Backoff(initial=1, maximum=1, jitter=False)),
        total_timeout=3.5,
    )
    callee = Callee(clock, failures=100)
    task = asyncio.create_task(pipeline.call(callee, idempotent=True))
    for _ in range(3):
        await asyncio.sleep(0)
        await clock.advance(1)
    # at t=3 the fourth attempt failed; a fourth backoff would end past the deadline
    with pytest.raises(ConnectionError, match="failure 4"):
        await task
    assert callee.calls == 4


async def test_the_total_timeout_cancels_a_hanging_attempt(clock: ManualClock) -> None:
    pipeline = Resilience("identity", clock=clock, retry=retry(clock), total_timeout=5.0)

    async def hangs() -> str:
        await asyncio.Event().wait()
        return "never"

    task = asyncio.create_task(pipeline.call(hangs, idempotent=True))
    await asyncio.sleep(0)
    await clock.advance(5)
    with pytest.raises(DeadlineExceeded) as caught:
        await task
    assert caught.value.timeout == 5.0


async def test_backoff_sleeps_hold_no_bulkhead_slot(clock: ManualClock) -> None:
    bulkhead = Bulkhead("identity", clock=clock, max_concurrent_calls=1)
    pipeline = Resilience("identity", clock=clock, retry=retry(clock), bulkhead=bulkhead)
    callee = Callee(clock, failures=1)
    task = asyncio.create_task(pipeline.call(callee, idempotent=True))
    await asyncio.sleep(0)
    assert callee.calls == 1
    assert bulkhead.metrics().active_calls == 0  # sleeping between attempts
    await clock.advance(1)
    assert await task == "answer 2"


async def test_an_adaptive_limit_in_the_pipeline(clock: ManualClock) -> None:
    limiter = AdaptiveLimit("identity", clock=clock, initial_limit=3)
    pipeline = Resilience("identity", clock=clock, adaptive=limiter)
    assert await pipeline.call(Callee(clock), idempotent=True) == "answer 1"
    assert limiter.in_flight == 0


async def test_hedging_in_the_pipeline_only_for_idempotent_calls(clock: ManualClock) -> None:
    pipeline = Resilience(
        "identity",
        clock=clock,
        hedge=Hedge(delay=1, clock=clock),
        breaker=CircuitBreaker("identity", clock=clock),
    )
    delays = [10.0, 0.5]
    calls = 0

    async def read() -> str:
        nonlocal calls
        calls += 1
        await clock.sleep(delays.pop(0))
        return f"read {calls}"

    task = asyncio.create_task(pipeline.call(read, idempotent=True))
    for step in (1.0, 0.5):
        for _ in range(5):
            await asyncio.sleep(0)
        await clock.advance(step)
    assert await task == "read 2"
    assert calls == 2

    write_calls = Callee(clock, seconds=3)
    task = asyncio.create_task(pipeline.call(write_calls, idempotent=False, idempotency_key=True))
    for _ in range(3):
        for _ in range(5):
            await asyncio.sleep(0)
        await clock.advance(1)
    assert await task == "answer 1"
    assert write_calls.calls == 1


async def test_a_fallback_answers_on_both_paths(clock: ManualClock) -> None:
    breaker = small_breaker(clock)
    breaker.transition_to_forced_open_state()
    fast = Resilience("identity", clock=clock, breaker=breaker)
    full = Resilience("identity", clock=clock, breaker=breaker, total_timeout=5)
    fallback = Fallback.value("from cache")
    for pipeline in (fast, full):
        assert await pipeline.call(Callee(clock), idempotent=True, fallback=fallback) == (
            "from cache"
        )
        with pytest.raises(CircuitOpen):
            await pipeline.call(Callee(clock), idempotent=True)


async def test_the_decorator(clock: ManualClock) -> None:
    clock.auto_advance = True
    pipeline = Resilience("identity", clock=clock, retry=retry(clock))
    attempts: list[int] = []

    @pipeline.decorate(idempotent=True)
    async def user(uid: int) -> int:
        attempts.append(uid)
        if len(attempts) == 1:
            raise ConnectionError("once")
        return uid

    assert await user(42) == 42
    assert attempts == [42, 42]


@pytest.mark.parametrize("knob", ["attempt_timeout", "total_timeout"])
def test_timeouts_must_be_positive(clock: ManualClock, knob: str) -> None:
    with pytest.raises(ValueError, match=knob):
        Resilience("identity", clock=clock, **{knob: 0})  # type: ignore[arg-type]
