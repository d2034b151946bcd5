"""Retries: backoff with full jitter, what is retried, Retry-After, the budget, the hop rule."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime

import pytest

from lms_shared.errors import ServiceUnavailable
from lms_shared.resilience import (
    RETRY_HOP_HEADER,
    Backoff,
    Deadline,
    Retry,
    RetryBudget,
    RetryEvent,
    is_idempotent_method,
    may_retry,
    parse_retry_after,
    retry,
    retry_after_of,
    retry_hop_value,
    upstream_retries,
)
from lms_shared.testing import ManualClock


class Flaky:
    """Fails ``failures`` times with ``error``, then answers."""

    def __init__(self, failures: int, error: Exception | None = None) -> None:
        self.failures = failures
        self.error = error or ConnectionError("refused")
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        return "ok"


class Throttled(Exception):
    def __init__(self, retry_after: object) -> None:
        super().__init__("slow down")
        self.retry_after = retry_after


def policy(clock: ManualClock, **options: object) -> Retry:
    defaults: dict[str, object] = {
        "on": ConnectionError,
        "backoff": Backoff(initial=1, maximum=8, jitter=False),
    }
    return Retry(clock=clock, **{**defaults, **options})  # type: ignore[arg-type]


# -- backoff ---------------------------------------------------------------


def test_backoff_doubles_up_to_its_maximum() -> None:
    backoff = Backoff(initial=0.5, maximum=3, jitter=False)
    assert [backoff.delay(n, random.random) for n in range(1, 6)] == [0.5, 1, 2, 3, 3]
    assert backoff.ceiling(10_000) == 3  # no overflow however many retries


def test_full_jitter_draws_between_zero_and_the_ceiling() -> None:
    backoff = Backoff(initial=1, maximum=100)
    draws = iter([0.0, 0.5, 0.999])
    assert [backoff.delay(n, lambda: next(draws)) for n in (1, 2, 3)] == [0.0, 1.0, 3.996]
    seeded = random.Random(7)
    delays = [backoff.delay(4, seeded.random) for _ in range(200)]
    assert all(0 <= d < 8 for d in delays)
    assert len(set(delays)) == 200  # spread, not synchronised


@pytest.mark.parametrize(
    "options",
    [{"initial": -1}, {"initial": 2, "maximum": 1}, {"multiplier": 0.5}, {"maximum": float("nan")}],
)
def test_invalid_backoff_is_refused(options: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="backoff"):
        Backoff(**options)


# -- the retry loop -----------------------------------------------------------


async def test_retries_then_answers(clock: ManualClock) -> None:
    clock.auto_advance = True
    flaky = Flaky(2)
    assert await policy(clock).call(flaky, idempotent=True) == "ok"
    assert flaky.calls == 3
    assert clock.slept == [1, 2]


async def test_the_last_exception_surfaces_unchanged(clock: ManualClock) -> None:
    clock.auto_advance = True
    error = ConnectionError("still refused")
    flaky = Flaky(10, error)
    with pytest.raises(ConnectionError) as caught:
        await policy(clock, attempts=4).call(flaky, idempotent=True)
    assert caught.value is error
    assert flaky.calls == 4
    assert clock.slept == [1, 2, 4]


async def test_other_exceptions_are_not_retried(clock: ManualClock) -> None:
    flaky = Flaky(1, ValueError("a bug of ours"))
    with pytest.raises(ValueError, match="a bug of ours"):
        await policy(clock).call(flaky, idempotent=True)
    assert flaky.calls == 1


async def test_a_predicate_decides(clock: ManualClock) -> None:
    clock.auto_advance = True
    flaky = Flaky(1, ServiceUnavailable("down"))
    retried = policy(clock, on=lambda exc: getattr(exc, "status", 0) == 503)
    assert await retried.call(flaky, idempotent=True) == "ok"
    assert flaky.calls == 2


@pytest.mark.parametrize("on", [(), ("ConnectionError",), 42])
def test_on_must_name_exceptions(clock: ManualClock, on: object) -> None:
    with pytest.raises(TypeError, match="on="):
        Retry(on=on, clock=clock)  # type: ignore[arg-type]


def test_attempts_must_be_positive(clock: ManualClock) -> None:
    with pytest.raises(ValueError, match="attempts"):
        Retry(on=OSError, clock=clock, attempts=0)


async def test_cancellation_is_never_retried(clock: ManualClock) -> None:
    calls = 0

    async def cancelled() -> str:
        nonlocal calls
        calls += 1
        raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        await Retry(on=BaseException, clock=clock).call(cancelled, idempotent=True)
    assert calls == 1


# -- the idempotency gate and the hop --------------------------------------------


async def test_a_non_idempotent_call_is_tried_once(clock: ManualClock) -> None:
    flaky = Flaky(1)
    with pytest.raises(ConnectionError):
        await policy(clock).call(flaky, idempotent=False)
    assert flaky.calls == 1


async def test_an_idempotency_key_makes_it_retryable(clock: ManualClock) -> None:
    clock.auto_advance = True
    flaky = Flaky(1)
    assert await policy(clock).call(flaky, idempotent=False, idempotency_key=True) == "ok"
    assert flaky.calls == 2


async def test_no_retry_when_an_upstream_hop_retries(clock: ManualClock) -> None:
    flaky = Flaky(1)
    with pytest.raises(ConnectionError):
        await policy(clock).call(flaky, idempotent=True, upstream_retrying=True)
    assert flaky.calls == 1


def test_only_one_hop_retries_along_a_chain() -> None:
    # A (edge, no mark) -> B -> C: A retries and marks; B and C see the mark
    a_retries = may_retry(idempotent=True, upstream=upstream_retries(None))
    to_b = retry_hop_value(upstream=False, retrying=a_retries)
    b_retries = may_retry(idempotent=True, upstream=upstream_retries(to_b))
    to_c = retry_hop_value(upstream=upstream_retries(to_b), retrying=b_retries)
    c_retries = may_retry(idempotent=True, upstream=upstream_retries(to_c))
    assert (a_retries, b_retries, c_retries) == (True, False, False)
    assert to_b == to_c == "1"
    assert RETRY_HOP_HEADER == "x-lms-retry-hop"
    # a hop that cannot retry (a POST without a key) leaves the next hop free to
    assert retry_hop_value(upstream=False, retrying=False) is None
    assert upstream_retries("") is True  # any value is the mark, even a malformed one


def test_idempotent_methods_are_rfc_9110s() -> None:
    assert all(is_idempotent_method(m) for m in ("GET", "head", "PUT", "DELETE", "OPTIONS"))
    assert not any(is_idempotent_method(m) for m in ("POST", "PATCH", "CONNECT"))


# -- Retry-After ------------------------------------------------------------------


async def test_retry_after_is_waited_at_least(clock: ManualClock) -> None:
    clock.auto_advance = True
    flaky = Flaky(1, Throttled(5))
    assert await policy(clock, on=Throttled).call(flaky, idempotent=True) == "ok"
    assert clock.slept == [5]


async def test_a_shorter_retry_after_keeps_the_backoff(clock: ManualClock) -> None:
    clock.auto_advance = True
    flaky = Flaky(1, Throttled(0.25))
    await policy(clock, on=Throttled).call(flaky, idempotent=True)
    assert clock.slept == [1]


async def test_a_retry_after_beyond_the_cap_ends_the_retries(clock: ManualClock) -> None:
    flaky = Flaky(1, Throttled(120))
    with pytest.raises(Throttled):
        await policy(clock, on=Throttled, max_retry_after=60).call(flaky, idempotent=True)
    assert (flaky.calls, clock.slept) == (1, [])


async def test_a_retry_after_past_the_deadline_ends_the_retries(clock: ManualClock) -> None:
    flaky = Flaky(1, Throttled(10))
    deadline = Deadline(8, clock=clock)
    with pytest.raises(Throttled):
        await policy(clock, on=Throttled).call(flaky, idempotent=True, deadline=deadline)
    assert (flaky.calls, clock.slept) == (1, [])


async def test_no_backoff_sleeps_past_the_deadline(clock: ManualClock) -> None:
    clock.auto_advance = True
    flaky = Flaky(10)
    deadline = Deadline(3.5, clock=clock)
    with pytest.raises(ConnectionError):
        await policy(clock, attempts=10).call(flaky, idempotent=True, deadline=deadline)
    assert clock.slept == [1, 2]  # then 4 s would end after the deadline


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (3, 3.0),
        (0.5, 0.5),
        (0, 0.0),
        (None, None),
        (-1, None),
        (True, None),
        ("5", None),
        (float("inf"), None),
        (float("nan"), None),
    ],
)
def test_retry_after_protocol_accepts_only_sane_seconds(
    value: object, expected: float | None
) -> None:
    assert retry_after_of(Throttled(value)) == expected
    assert retry_after_of(ValueError()) is None


NOW = datetime(2026, 10, 21, 7, 28, tzinfo=UTC)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("120", 120.0),
        (" 3 ", 3.0),
        ("Wed, 21 Oct 2026 07:28:30 GMT", 30.0),
        ("Wed, 21 Oct 2026 07:27:00 GMT", 0.0),  # in the past: now
        (None, None),
        ("", None),
        ("-5", None),
        ("1.5", None),
        ("soon", None),
        ("Wed, 99 Oct 2026 07:28:00 GMT", None),
        ("\u0661\u0662", None),  # Arabic-Indic digits are digits to str.isdigit, not to HTTP
        ("9" * 65, None),  # longer than any sane value: not read
        ("[" * 10_000, None),
    ],
)
def test_retry_after_headers_are_parsed_strictly(
    header: str | None, expected: float | None
) -> None:
    assert parse_retry_after(header, now=NOW) == expected


# -- listeners and the decorator --------------------------------------------------


async def test_listeners_hear_each_retry(clock: ManualClock) -> None:
    clock.auto_advance = True
    events: list[RetryEvent] = []
    retried = policy(clock, name="identity")
    remove = retried.on_retry(events.append)
    retried.on_retry(lambda _: 1 / 0)  # a broken listener does not stop the retry
    await retried.call(Flaky(2), idempotent=True)
    remove()
    await retried.call(Flaky(1), idempotent=True)
    assert [(e.policy, e.attempt, e.delay) for e in events] == [
        ("identity", 1, 1),
        ("identity", 2, 2),
    ]
    assert isinstance(events[0].exception, ConnectionError)


async def test_the_decorator_retries_each_call(clock: ManualClock) -> None:
    clock.auto_advance = True
    calls: list[int] = []

    @retry(policy(clock), idempotent=True)
    async def course(course_id: int) -> int:
        calls.append(course_id)
        if len(calls) < 2:
            raise ConnectionError("first call fails")
        return course_id * 10

    assert await course(4) == 40
    assert calls == [4, 4]
    assert course.__name__ == "course"


# -- the budget ---------------------------------------------------------------------


async def test_a_retry_storm_stays_within_the_budget(clock: ManualClock) -> None:
    clock.auto_advance = True  # backoff sleeps pass at once (and time moves)
    budget = RetryBudget(clock=clock, ratio=0.1, min_per_second=1, ttl=10)
    retried = policy(clock, attempts=5, budget=budget, backoff=Backoff(initial=0, maximum=0))
    callee = Flaky(10**9)  # every callee failing

    async def client() -> None:
        with pytest.raises(ConnectionError):
            await retried.call(callee, idempotent=True)

    await asyncio.gather(*(client() for _ in range(500)))
    retries = callee.calls - 500
    assert retries <= 0.1 * 500 + 1 * 10  # ratio of the requests + the reserve
    assert retries == 60  # and the budget is used, not refused wholesale
    metrics = budget.metrics()
    assert (metrics.requests, metrics.retries, metrics.available) == (500, 60, 0)
    assert 0 < metrics.denied <= 500  # a client is refused once, then gives up


async def test_without_a_budget_the_storm_multiplies(clock: ManualClock) -> None:
    clock.auto_advance = True
    retried = policy(clock, attempts=5, backoff=Backoff(initial=0, maximum=0))
    callee = Flaky(10**9)
    for _ in range(100):
        with pytest.raises(ConnectionError):
            await retried.call(callee, idempotent=True)
    assert callee.calls == 500


async def test_the_budget_refills_as_old_traffic_leaves_the_window(clock: ManualClock) -> None:
    budget = RetryBudget(clock=clock, ratio=0.5, min_per_second=0, ttl=10)
    for _ in range(4):
        budget.record_request()
    assert [budget.try_acquire() for _ in range(3)] == [True, True, False]
    await clock.advance(5)
    budget.record_request()
    budget.record_request()
    assert budget.try_acquire() is True  # 6 requests fund 3
    assert budget.try_acquire() is False
    await clock.advance(5)  # the first four requests (and two retries) leave
    assert budget.metrics().requests == 2
    assert budget.try_acquire() is False  # 2 requests fund 1, and 1 was taken at t=5
    await clock.advance(5)
    assert budget.metrics().requests == 0
    assert budget.metrics().available == 0


async def test_the_reserve_allows_retries_without_traffic(clock: ManualClock) -> None:
    budget = RetryBudget(clock=clock, ratio=0, min_per_second=2, ttl=5)
    assert sum(budget.try_acquire() for _ in range(20)) == 10
    await clock.advance(5)
    assert sum(budget.try_acquire() for _ in range(20)) == 10


@pytest.mark.parametrize(
    "options", [{"ratio": -0.1}, {"min_per_second": -1}, {"ttl": 0.5}, {"ttl": float("inf")}]
)
def test_invalid_budgets_are_refused(clock: ManualClock, options: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="retry budget"):
        RetryBudget(clock=clock, **options)
