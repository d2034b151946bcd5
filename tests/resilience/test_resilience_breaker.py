"""Every circuit-breaker transition, driven by the manual clock.

The expectations are Resilience4j's documented semantics: thresholds are
reached when the rate is equal or greater, a call is slow when strictly
longer than the threshold, rates wait for the minimum number of calls.
"""

from __future__ import annotations

import asyncio

import pytest

from lms_shared.resilience import (
    BreakerConfig,
    BreakerState,
    CircuitBreaker,
    CircuitOpen,
    SlidingWindowType,
    StateChange,
)
from lms_shared.testing import CapturedLogs, ManualClock

from .conftest import fail, record, succeed

TEN = BreakerConfig(sliding_window_size=10, minimum_number_of_calls=10)


def breaker(clock: ManualClock, config: BreakerConfig = TEN) -> CircuitBreaker:
    return CircuitBreaker("identity", config, clock=clock)


async def trip(b: CircuitBreaker) -> None:
    await record(b, failures=b.config.sliding_window_size)
    assert b.state is BreakerState.OPEN


def test_defaults_are_resilience4j_defaults() -> None:
    config = BreakerConfig()
    assert config.failure_rate_threshold == 50
    assert config.slow_call_rate_threshold == 100
    assert config.slow_call_duration_threshold == 60
    assert config.sliding_window_type is SlidingWindowType.COUNT_BASED
    assert config.sliding_window_size == 100
    assert config.minimum_number_of_calls == 100
    assert config.wait_duration_in_open_state == 60
    assert config.permitted_number_of_calls_in_half_open_state == 10
    assert config.max_wait_duration_in_half_open_state == 0
    assert config.automatic_transition_from_open_to_half_open_enabled is False
    assert config.record_exceptions == ()
    assert config.ignore_exceptions == ()


@pytest.mark.parametrize(
    ("knob", "value"),
    [
        ("failure_rate_threshold", 0),
        ("failure_rate_threshold", 100.5),
        ("slow_call_rate_threshold", -1),
        ("sliding_window_size", 0),
        ("minimum_number_of_calls", 0),
        ("permitted_number_of_calls_in_half_open_state", 0),
        ("sliding_window_size", True),
        ("slow_call_duration_threshold", 0),
        ("wait_duration_in_open_state", float("inf")),
        ("max_wait_duration_in_half_open_state", -1),
        ("record_exceptions", (ValueError, "x")),
    ],
)
def test_invalid_knobs_are_refused(knob: str, value: object) -> None:
    with pytest.raises(ValueError, match=knob):
        BreakerConfig(**{knob: value})  # type: ignore[arg-type]


def test_window_type_accepts_the_spring_spelling() -> None:
    config = BreakerConfig(sliding_window_type="TIME_BASED")  # type: ignore[arg-type]
    assert config.sliding_window_type is SlidingWindowType.TIME_BASED


async def test_opens_when_the_failure_rate_equals_the_threshold(clock: ManualClock) -> None:
    b = breaker(clock)
    await record(b, successes=5, failures=4)
    assert b.state is BreakerState.CLOSED  # 9 calls: below the minimum
    await record(b, failures=1)  # 5 of 10 failed: exactly 50 %
    assert b.state is BreakerState.OPEN
    assert b.metrics().failure_rate == 50.0


async def test_stays_closed_just_below_the_threshold(clock: ManualClock) -> None:
    b = breaker(clock)
    await record(b, successes=6, failures=4)
    assert b.state is BreakerState.CLOSED
    assert b.metrics().failure_rate == 40.0


async def test_no_rate_below_the_minimum_number_of_calls(clock: ManualClock) -> None:
    b = breaker(clock)
    await record(b, failures=9)
    snapshot = b.metrics()
    assert b.state is BreakerState.CLOSED
    assert snapshot.failure_rate == -1.0
    assert snapshot.slow_call_rate == -1.0
    assert snapshot.failed_calls == 9


async def test_minimum_is_capped_at_a_count_window_size(clock: ManualClock) -> None:
    b = breaker(clock, BreakerConfig(sliding_window_size=5, minimum_number_of_calls=100))
    await record(b, failures=5)
    assert b.state is BreakerState.OPEN


async def test_minimum_is_not_capped_for_a_time_window(clock: ManualClock) -> None:
    config = BreakerConfig(
        sliding_window_type=SlidingWindowType.TIME_BASED,
        sliding_window_size=5,
        minimum_number_of_calls=10,
    )
    b = breaker(clock, config)
    await record(b, failures=9)
    assert b.state is BreakerState.CLOSED
    await record(b, failures=1)
    assert b.state is BreakerState.OPEN


async def test_the_count_window_forgets_the_oldest_call(clock: ManualClock) -> None:
    b = breaker(clock, BreakerConfig(sliding_window_size=4, minimum_number_of_calls=4))
    await record(b, failures=1, successes=0)
    await record(b, successes=3)  # F S S S: 25 %
    await record(b, successes=1)  # the failure leaves: S S S S
    snapshot = b.metrics()
    assert (snapshot.buffered_calls, snapshot.failed_calls, snapshot.failure_rate) == (4, 0, 0.0)


async def test_a_long_healthy_window_still_opens_on_failures(clock: ManualClock) -> None:
    b = breaker(clock, BreakerConfig(sliding_window_size=4, minimum_number_of_calls=2))
    await record(b, successes=50)
    await record(b, failures=1)
    assert b.state is BreakerState.CLOSED  # S S S F: 25 %
    await record(b, successes=4)  # the failure leaves again
    assert b.metrics().failed_calls == 0
    await record(b, failures=2)  # S S F F: 50 %
    assert b.state is BreakerState.OPEN


async def test_opens_on_the_slow_call_rate(clock: ManualClock) -> None:
    config = BreakerConfig(
        sliding_window_size=4,
        minimum_number_of_calls=4,
        slow_call_rate_threshold=50,
        slow_call_duration_threshold=2.0,
    )
    b = breaker(clock, config)
    for took in (0.1, 2.5, 0.1):
        started = b.acquire()
        await clock.advance(took)
        b.on_success(started)
    assert b.state is BreakerState.CLOSED
    started = b.acquire()
    await clock.advance(3.0)
    b.on_success(started)  # 2 of 4 slow: exactly 50 %
    assert b.state is BreakerState.OPEN
    snapshot = b.metrics()
    assert snapshot.slow_call_rate == 50.0
    assert snapshot.failure_rate == 0.0
    assert (snapshot.slow_calls, snapshot.slow_successful_calls) == (2, 2)


async def test_a_call_of_exactly_the_threshold_is_not_slow(clock: ManualClock) -> None:
    config = BreakerConfig(
        sliding_window_size=3, minimum_number_of_calls=3, slow_call_duration_threshold=2.0
    )
    b = breaker(clock, config)
    for _ in range(3):
        started = b.acquire()
        await clock.advance(2.0)
        b.on_success(started)
    snapshot = b.metrics()
    assert snapshot.slow_calls == 0
    assert snapshot.slow_call_rate == 0.0
    assert b.state is BreakerState.CLOSED


async def test_slow_failures_count_as_both(clock: ManualClock) -> None:
    config = BreakerConfig(
        sliding_window_size=10, minimum_number_of_calls=10, slow_call_duration_threshold=1.0
    )
    b = breaker(clock, config)
    started = b.acquire()
    await clock.advance(1.5)
    b.on_error(ConnectionError("late and failed"), started)
    snapshot = b.metrics()
    assert (snapshot.failed_calls, snapshot.slow_calls, snapshot.slow_failed_calls) == (1, 1, 1)
    assert (snapshot.successful_calls, snapshot.slow_successful_calls) == (0, 0)


async def test_open_rejects_without_calling(clock: ManualClock) -> None:
    b = breaker(clock)
    await trip(b)
    await clock.advance(20)
    called = []

    async def tracked() -> str:
        called.append(1)
        return "ok"

    with pytest.raises(CircuitOpen) as caught:
        await b.call(tracked)
    assert called == []
    assert caught.value.breaker == "identity"
    assert caught.value.state == "OPEN"
    assert caught.value.retry_after == pytest.approx(40)
    assert caught.value.headers == {"Retry-After": "40"}
    assert caught.value.status == 503
    assert b.metrics().not_permitted_calls == 1


async def test_open_keeps_the_window_that_tripped_it(clock: ManualClock) -> None:
    b = breaker(clock)
    await record(b, successes=4, failures=6)
    snapshot = b.metrics()
    assert snapshot.state is BreakerState.OPEN
    assert (snapshot.buffered_calls, snapshot.failed_calls, snapshot.failure_rate) == (10, 6, 60.0)


async def test_open_to_half_open_on_the_first_call_after_the_wait(clock: ManualClock) -> None:
    b = breaker(clock)
    await trip(b)
    await clock.advance(59.9)
    with pytest.raises(CircuitOpen):
        await b.call(succeed)
    await clock.advance(0.1)
    assert b.state is BreakerState.OPEN  # no timer without the automatic transition
    assert await b.call(succeed) == "ok"
    assert b.state is BreakerState.HALF_OPEN
    assert b.metrics().buffered_calls == 1  # a fresh window of probes


async def test_open_to_half_open_automatically(clock: ManualClock) -> None:
    config = BreakerConfig(
        sliding_window_size=10,
        minimum_number_of_calls=10,
        wait_duration_in_open_state=30,
        automatic_transition_from_open_to_half_open_enabled=True,
    )
    b = breaker(clock, config)
    await trip(b)
    await clock.advance(29)
    assert b.state is BreakerState.OPEN
    await clock.advance(1)
    assert b.state is BreakerState.HALF_OPEN  # without any call
    await b.aclose()


async def test_manual_transitions_cancel_the_automatic_one(clock: ManualClock) -> None:
    config = BreakerConfig(
        sliding_window_size=2,
        minimum_number_of_calls=2,
        automatic_transition_from_open_to_half_open_enabled=True,
    )
    b = breaker(clock, config)
    await trip(b)
    b.transition_to_forced_open_state()
    await clock.advance(120)
    assert b.state is BreakerState.FORCED_OPEN


async def test_half_open_closes_when_the_probes_succeed(clock: ManualClock) -> None:
    config = BreakerConfig(
        sliding_window_size=10,
        minimum_number_of_calls=10,
        permitted_number_of_calls_in_half_open_state=3,
    )
    b = breaker(clock, config)
    await trip(b)
    await clock.advance(60)
    await record(b, successes=2, failures=0)
    assert b.state is BreakerState.HALF_OPEN
    await record(b, successes=1)
    assert b.state is BreakerState.CLOSED
    snapshot = b.metrics()
    assert (snapshot.buffered_calls, snapshot.failure_rate) == (0, -1.0)


async def test_half_open_opens_again_when_the_probes_fail(clock: ManualClock) -> None:
    config = BreakerConfig(
        sliding_window_size=10,
        minimum_number_of_calls=10,
        permitted_number_of_calls_in_half_open_state=3,
    )
    b = breaker(clock, config)
    await trip(b)
    await clock.advance(60)
    await record(b, successes=1, failures=2)  # 66 % >= 50 %
    assert b.state is BreakerState.OPEN
    with pytest.raises(CircuitOpen) as caught:
        await b.call(succeed)
    assert caught.value.retry_after == pytest.approx(60)


async def test_half_open_permits_only_its_probes(clock: ManualClock) -> None:
    config = BreakerConfig(
        sliding_window_size=2,
        minimum_number_of_calls=2,
        permitted_number_of_calls_in_half_open_state=2,
    )
    b = breaker(clock, config)
    await trip(b)
    await clock.advance(60)
    first, second = b.acquire(), b.acquire()
    with pytest.raises(CircuitOpen) as caught:
        b.acquire()
    assert caught.value.state == "HALF_OPEN"
    assert caught.value.retry_after is None
    assert b.metrics().not_permitted_calls == 1
    b.on_success(first)
    b.on_success(second)
    assert b.state is BreakerState.CLOSED


async def test_half_open_decides_after_the_minimum_when_it_is_smaller(clock: ManualClock) -> None:
    config = BreakerConfig(
        sliding_window_size=10,
        minimum_number_of_calls=2,
        permitted_number_of_calls_in_half_open_state=5,
    )
    b = breaker(clock, config)
    await record(b, failures=2)
    assert b.state is BreakerState.OPEN
    await clock.advance(60)
    await record(b, successes=2)
    assert b.state is BreakerState.CLOSED


async def test_half_open_gives_up_after_its_maximum_wait(clock: ManualClock) -> None:
    config = BreakerConfig(
        sliding_window_size=2,
        minimum_number_of_calls=2,
        permitted_number_of_calls_in_half_open_state=2,
        max_wait_duration_in_half_open_state=5,
    )
    b = breaker(clock, config)
    await trip(b)
    await clock.advance(60)
    b.acquire()  # a probe that never ends
    await clock.advance(5)
    assert b.state is BreakerState.OPEN
    await b.aclose()


async def test_half_open_maximum_wait_is_also_checked_on_a_call(clock: ManualClock) -> None:
    config = BreakerConfig(
        sliding_window_size=2,
        minimum_number_of_calls=2,
        permitted_number_of_calls_in_half_open_state=3,
        max_wait_duration_in_half_open_state=5,
    )
    b = breaker(clock, config)
    await trip(b)
    await clock.advance(60)
    b.acquire()
    b.close()  # no timer: only the next call can notice
    await clock.advance(6)
    assert b.state is BreakerState.HALF_OPEN
    with pytest.raises(CircuitOpen):
        b.acquire()
    assert b.state is BreakerState.OPEN


async def test_a_call_started_before_half_open_is_not_a_probe(clock: ManualClock) -> None:
    config = BreakerConfig(
        sliding_window_size=2,
        minimum_number_of_calls=2,
        permitted_number_of_calls_in_half_open_state=1,
    )
    b = breaker(clock, config)
    straggler = b.acquire()
    await record(b, failures=2)
    await clock.advance(60)
    b.transition_to_half_open_state()
    b.on_success(straggler)
    assert b.state is BreakerState.HALF_OPEN
    assert b.metrics().buffered_calls == 0


async def test_disabled_permits_everything_and_records_nothing(clock: ManualClock) -> None:
    b = breaker(clock)
    b.transition_to_disabled_state()
    await record(b, failures=50)
    snapshot = b.metrics()
    assert b.state is BreakerState.DISABLED
    assert (snapshot.buffered_calls, snapshot.failed_calls, snapshot.failure_rate) == (0, 0, -1.0)


async def test_forced_open_rejects_everything_forever(clock: ManualClock) -> None:
    b = breaker(clock)
    b.transition_to_forced_open_state()
    for _ in range(3):
        with pytest.raises(CircuitOpen) as caught:
            await b.call(succeed)
        await clock.advance(3600)
    assert caught.value.state == "FORCED_OPEN"
    assert caught.value.retry_after is None
    assert b.state is BreakerState.FORCED_OPEN
    assert b.metrics().not_permitted_calls == 3
    b.transition_to_closed_state()
    assert await b.call(succeed) == "ok"


async def test_metrics_only_records_but_never_opens(clock: ManualClock) -> None:
    b = breaker(clock)
    b.transition_to_metrics_only_state()
    await record(b, failures=20)
    snapshot = b.metrics()
    assert b.state is BreakerState.METRICS_ONLY
    assert (snapshot.failure_rate, snapshot.buffered_calls) == (100.0, 10)
    assert await b.call(succeed) == "ok"


async def test_ignored_exceptions_count_as_nothing(clock: ManualClock) -> None:
    b = breaker(
        clock,
        BreakerConfig(
            sliding_window_size=2, minimum_number_of_calls=2, ignore_exceptions=(KeyError,)
        ),
    )

    async def missing() -> str:
        raise KeyError("not found is not an outage")

    for _ in range(5):
        with pytest.raises(KeyError):
            await b.call(missing)
    snapshot = b.metrics()
    assert b.state is BreakerState.CLOSED
    assert (snapshot.buffered_calls, snapshot.failed_calls, snapshot.successful_calls) == (0, 0, 0)


async def test_an_ignored_exception_gives_its_probe_back(clock: ManualClock) -> None:
    config = BreakerConfig(
        sliding_window_size=1,
        minimum_number_of_calls=1,
        permitted_number_of_calls_in_half_open_state=1,
        ignore_exceptions=(KeyError,),
    )
    b = breaker(clock, config)
    await trip(b)
    await clock.advance(60)

    async def missing() -> str:
        raise KeyError("ignored")

    with pytest.raises(KeyError):
        await b.call(missing)
    assert b.state is BreakerState.HALF_OPEN
    assert await b.call(succeed) == "ok"  # the permit came back
    assert b.state is BreakerState.CLOSED


async def test_ignored_wins_over_recorded(clock: ManualClock) -> None:
    config = BreakerConfig(
        sliding_window_size=1,
        minimum_number_of_calls=1,
        record_exceptions=(LookupError,),
        ignore_exceptions=(KeyError,),
    )
    b = breaker(clock, config)

    async def missing() -> str:
        raise KeyError("a LookupError, but ignored")

    with pytest.raises(KeyError):
        await b.call(missing)
    assert b.metrics().buffered_calls == 0


async def test_with_record_exceptions_others_are_successes(clock: ManualClock) -> None:
    config = BreakerConfig(
        sliding_window_size=2, minimum_number_of_calls=2, record_exceptions=(ConnectionError,)
    )
    b = breaker(clock, config)

    async def invalid() -> str:
        raise ValueError("a bad request of ours")

    for _ in range(2):
        with pytest.raises(ValueError, match="bad request"):
            await b.call(invalid)
    snapshot = b.metrics()
    assert (snapshot.successful_calls, snapshot.failed_calls, b.state) == (
        2,
        0,
        BreakerState.CLOSED,
    )
    await record(b, failures=1)  # S F: 50 %
    assert b.state is BreakerState.OPEN


async def test_predicates_record_ignore_and_judge_results(clock: ManualClock) -> None:
    config = BreakerConfig(
        sliding_window_size=10,
        minimum_number_of_calls=10,
        record_failure_predicate=lambda exc: "outage" in str(exc),
        ignore_exception_predicate=lambda exc: "ignore" in str(exc),
        record_result_predicate=lambda result: result == 503,
    )
    b = breaker(clock, config)

    async def raising(message: str) -> int:
        raise RuntimeError(message)

    async def status(code: int) -> int:
        return code

    for message in ("outage", "ignore me", "just a bug"):
        with pytest.raises(RuntimeError):
            await b.call(lambda m=message: raising(m))  # type: ignore[misc]
    assert await b.call(lambda: status(503)) == 503
    assert await b.call(lambda: status(200)) == 200
    snapshot = b.metrics()
    assert (snapshot.buffered_calls, snapshot.failed_calls, snapshot.successful_calls) == (4, 2, 2)


async def test_cancellation_is_not_recorded(clock: ManualClock) -> None:
    b = breaker(clock)
    gate = asyncio.Event()

    async def hangs() -> str:
        await gate.wait()
        return "never"

    task = asyncio.create_task(b.call(hangs))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert b.metrics().buffered_calls == 0


async def test_time_window_buckets_expire(clock: ManualClock) -> None:
    config = BreakerConfig(
        sliding_window_type=SlidingWindowType.TIME_BASED,
        sliding_window_size=10,
        minimum_number_of_calls=20,
    )
    b = breaker(clock, config)
    await record(b, failures=4)  # t = 0
    await clock.advance(5)
    await record(b, successes=6)  # t = 5
    assert (b.metrics().buffered_calls, b.metrics().failed_calls) == (10, 4)
    await clock.advance(4.9)  # t = 9.9: the second-0 bucket is still in
    assert b.metrics().buffered_calls == 10
    await clock.advance(0.1)  # t = 10: it left, by a read alone
    snapshot = b.metrics()
    assert (snapshot.buffered_calls, snapshot.failed_calls) == (6, 0)
    await clock.advance(100)
    assert b.metrics().buffered_calls == 0


async def test_time_window_opens_on_the_calls_of_its_seconds(clock: ManualClock) -> None:
    config = BreakerConfig(
        sliding_window_type=SlidingWindowType.TIME_BASED,
        sliding_window_size=2,
        minimum_number_of_calls=4,
    )
    b = breaker(clock, config)
    await record(b, failures=3)
    await clock.advance(2)  # those three expired
    await record(b, successes=2, failures=1)
    assert b.state is BreakerState.CLOSED  # 3 calls in the window: below the minimum
    await record(b, failures=1)  # 2 of 4
    assert b.state is BreakerState.OPEN


async def test_state_changes_are_logged_and_told_to_listeners(
    clock: ManualClock, logs: CapturedLogs
) -> None:
    b = breaker(clock, BreakerConfig(sliding_window_size=2, minimum_number_of_calls=2))
    changes: list[StateChange] = []
    remove = b.on_state_change(changes.append)
    b.on_state_change(lambda _: 1 / 0)  # a broken listener harms nobody
    await trip(b)
    await clock.advance(60)
    await record(b, successes=2)
    remove()
    b.transition_to_disabled_state()
    assert [(c.from_state, c.to_state) for c in changes] == [
        (BreakerState.CLOSED, BreakerState.OPEN),
        (BreakerState.OPEN, BreakerState.HALF_OPEN),
        (BreakerState.HALF_OPEN, BreakerState.CLOSED),
    ]
    assert changes[0].metrics.failure_rate == 100.0
    lines = logs.events("circuit_breaker.state_changed")
    assert [(line["from_state"], line["to_state"]) for line in lines] == [
        ("CLOSED", "OPEN"),
        ("OPEN", "HALF_OPEN"),
        ("HALF_OPEN", "CLOSED"),
        ("CLOSED", "DISABLED"),
    ]
    assert lines[0]["log_level"] == "warning"
    assert lines[0]["breaker"] == "identity"
    assert len(logs.events("circuit_breaker.listener_failed")) == 4


async def test_reset_starts_over(clock: ManualClock) -> None:
    b = breaker(clock)
    await trip(b)
    b.reset()
    snapshot = b.metrics()
    assert snapshot.state is BreakerState.CLOSED
    assert (snapshot.buffered_calls, snapshot.not_permitted_calls) == (0, 0)


async def test_the_caller_exception_surfaces_unchanged(clock: ManualClock) -> None:
    b = breaker(clock)
    with pytest.raises(ConnectionError, match="dependency down"):
        await b.call(fail)
