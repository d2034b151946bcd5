"""The rate-limit storage contract, run against every backend (memory, real Redis).

Time comes from a ManualClock passed through the limiter, so Redis and
memory see the very same instants and nothing sleeps.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from lms_shared.ratelimit import (
    Quota,
    Rate,
    RateLimited,
    RateLimiter,
    RateLimitStorage,
    StorageUnavailable,
)
from lms_shared.testing import ManualClock

FIVE_PER_MINUTE = Quota("login", Rate(5, 60))


@pytest.fixture
def limiter(storage: RateLimitStorage, clock: ManualClock) -> RateLimiter:
    return RateLimiter(storage, clock=clock, namespace="courses")


async def test_a_full_quota_admits_the_burst_then_refuses(limiter: RateLimiter) -> None:
    decisions = [await limiter.hit("ip:198.51.100.7", FIVE_PER_MINUTE) for _ in range(6)]
    assert [d.allowed for d in decisions] == [True] * 5 + [False]
    assert [d.remaining for d in decisions] == [4, 3, 2, 1, 0, 0]
    refused = decisions[-1]
    assert refused.retry_after == 12  # one request every 60/5 s
    assert refused.reset == 12
    assert decisions[0].reset == 12
    assert decisions[4].reset == 12  # the next request's worth comes back, not the whole quota


async def test_quota_refills_one_request_per_interval(
    limiter: RateLimiter, clock: ManualClock
) -> None:
    for _ in range(5):
        await limiter.hit("k", FIVE_PER_MINUTE)
    await clock.advance(11.9)
    assert not (await limiter.hit("k", FIVE_PER_MINUTE)).allowed
    await clock.advance(0.1)
    admitted = await limiter.hit("k", FIVE_PER_MINUTE)
    assert admitted.allowed
    assert admitted.remaining == 0
    assert not (await limiter.hit("k", FIVE_PER_MINUTE)).allowed
    await clock.advance(60)
    assert (await limiter.peek("k", FIVE_PER_MINUTE)).remaining == 5


async def test_refused_requests_do_not_consume_quota(
    limiter: RateLimiter, clock: ManualClock
) -> None:
    for _ in range(5):
        await limiter.hit("k", FIVE_PER_MINUTE)
    for _ in range(50):  # hammering while refused does not push the wait further
        assert (await limiter.hit("k", FIVE_PER_MINUTE)).retry_after == 12
    await clock.advance(12)
    assert (await limiter.hit("k", FIVE_PER_MINUTE)).allowed


async def test_keys_and_policies_are_independent(limiter: RateLimiter) -> None:
    other = Quota("search", Rate(5, 60))
    for _ in range(5):
        await limiter.hit("a", FIVE_PER_MINUTE)
    assert not (await limiter.hit("a", FIVE_PER_MINUTE)).allowed
    assert (await limiter.hit("b", FIVE_PER_MINUTE)).allowed
    assert (await limiter.hit("a", other)).allowed


async def test_namespaces_keep_services_apart(
    storage: RateLimitStorage, clock: ManualClock
) -> None:
    courses = RateLimiter(storage, clock=clock, namespace="courses")
    grading = RateLimiter(storage, clock=clock, namespace="grading")
    for _ in range(5):
        await courses.hit("k", FIVE_PER_MINUTE)
    assert not (await courses.hit("k", FIVE_PER_MINUTE)).allowed
    assert (await grading.hit("k", FIVE_PER_MINUTE)).allowed


async def test_cost_counts_several_requests(limiter: RateLimiter) -> None:
    assert (await limiter.hit("k", FIVE_PER_MINUTE, cost=3)).remaining == 2
    refused = await limiter.hit("k", FIVE_PER_MINUTE, cost=3)
    assert not refused.allowed
    assert refused.retry_after == 12  # one more interval frees the third unit
    assert (await limiter.hit("k", FIVE_PER_MINUTE, cost=2)).allowed
    with pytest.raises(ValueError, match="burst"):
        await limiter.hit("k", FIVE_PER_MINUTE, cost=6)


async def test_peek_does_not_count(limiter: RateLimiter) -> None:
    for _ in range(10):
        assert (await limiter.peek("k", FIVE_PER_MINUTE)).remaining == 5
    assert (await limiter.hit("k", FIVE_PER_MINUTE)).remaining == 4


async def test_reset_makes_the_quota_whole(limiter: RateLimiter) -> None:
    for _ in range(5):
        await limiter.hit("k", FIVE_PER_MINUTE)
    await limiter.reset("k", FIVE_PER_MINUTE)
    assert (await limiter.hit("k", FIVE_PER_MINUTE)).remaining == 4


async def test_check_raises_a_429_problem_with_headers(limiter: RateLimiter) -> None:
    for _ in range(5):
        await limiter.check("k", FIVE_PER_MINUTE)
    with pytest.raises(RateLimited) as caught:
        await limiter.check("k", FIVE_PER_MINUTE)
    assert caught.value.status == 429
    assert caught.value.headers == {
        "ratelimit": '"login";r=0;t=12',
        "ratelimit-policy": '"login";q=5;w=60',
        "retry-after": "12",
    }
    assert caught.value.extensions == {"violated-policies": ["login"]}


async def test_burst_smaller_than_the_limit_smooths_traffic(limiter: RateLimiter) -> None:
    smooth = Quota("smooth", Rate(60, 60), burst=2)  # 1/s, at most 2 at once
    assert [(await limiter.hit("k", smooth)).allowed for _ in range(3)] == [True, True, False]


async def test_concurrent_checks_never_over_admit(limiter: RateLimiter) -> None:
    decisions = await asyncio.gather(*(limiter.hit("hot", FIVE_PER_MINUTE) for _ in range(40)))
    assert sum(d.allowed for d in decisions) == 5


async def test_acquire_contract_directly(storage: RateLimitStorage) -> None:
    now = 1_767_225_600_000_000
    allowed, tat, used = await storage.acquire("direct", now, 1_000_000, 3_000_000, 1)
    assert (allowed, tat, used) == (True, now + 1_000_000, now)
    await storage.acquire("direct", now, 1_000_000, 3_000_000, 2)
    allowed, tat, used = await storage.acquire("direct", now, 1_000_000, 3_000_000, 1)
    assert (allowed, tat, used) == (False, now + 3_000_000, now)
    allowed, tat, _ = await storage.acquire("direct", now + 5_000_000, 1_000_000, 3_000_000, 0)
    assert (allowed, tat) == (True, now + 5_000_000)  # a peek of a long-idle key
    await storage.ping()


async def test_state_is_forgotten_once_the_quota_is_whole(
    storage: RateLimitStorage, limiter: RateLimiter, clock: ManualClock
) -> None:
    await limiter.hit("k", FIVE_PER_MINUTE)
    await clock.advance(13)
    assert (await limiter.hit("k", FIVE_PER_MINUTE)).remaining == 4


@pytest.mark.redis
async def test_redis_keys_expire_by_themselves(redis_url: str) -> None:
    import redis.asyncio as aioredis

    from lms_shared.ratelimit import storage_from_url

    prefix = "lms-test-expiry:"
    storage = storage_from_url(redis_url, prefix=prefix)
    now = 1_767_225_600_000_000
    await storage.acquire("ttl", now, 2_000_000, 10_000_000, 1)
    client = aioredis.Redis.from_url(redis_url)
    try:
        ttl = await client.pttl(prefix + "ttl")
        await client.delete(prefix + "ttl")
    finally:
        await client.aclose()
        await storage.stop()
    assert 0 < ttl <= 2_001


@pytest.mark.redis
async def test_redis_server_clock_mode(redis_url: str) -> None:
    from lms_shared.ratelimit import storage_from_url

    storage = storage_from_url(redis_url + "?clock=server&prefix=lms-test-server-clock:")
    try:
        allowed, tat, used = await storage.acquire("k", -1, 1_000_000, 1_000_000, 1)
        await storage.reset("k")
    finally:
        await storage.stop()
    assert allowed
    assert tat == used + 1_000_000
    assert abs(used / 1e6 - time.time()) < 60  # the server's clock, not the argument


async def test_unreachable_redis_raises_storage_unavailable() -> None:
    from lms_shared.ratelimit import storage_from_url

    storage = storage_from_url("redis://127.0.0.1:1/0")
    try:
        with pytest.raises(StorageUnavailable):
            await storage.acquire("k", 0, 1, 1, 1)
        with pytest.raises(StorageUnavailable):
            await storage.ping()
    finally:
        await storage.stop()
