"""Two instances of a service share one limit through the real Redis.

Each instance has its own app, limiter and Redis connection pool, as two
replicas behind a load balancer would; requests hit both at once. The
Lua script makes each check atomic, so the total admitted never exceeds
the quota (no over-admission), and both instances report the same state.
"""

from __future__ import annotations

import asyncio
import uuid

import pytest

from lms_shared import Service, create_service, load_settings
from lms_shared.testing import service_client

pytestmark = pytest.mark.redis


def replica(url: str) -> Service:
    # fail closed: a storage error must show as a 503, never as an admission
    settings = load_settings(
        ratelimit_url=url, ratelimit_default="20/minute", ratelimit_on_error="deny"
    )
    service = create_service("grading", "1.0.0", settings=settings)

    @service.router.get("/v1/grades")
    async def grades() -> dict[str, bool]:
        await asyncio.sleep(0)  # let the other replica interleave
        return {"ok": True}

    return service


async def test_the_limit_holds_across_two_instances_under_concurrency(
    redis_url: str, key_prefix: str
) -> None:
    url = f"{redis_url}?prefix={key_prefix}"
    first, second = replica(url), replica(url)
    async with service_client(first) as a, service_client(second) as b:
        responses = await asyncio.gather(
            *(client.get("/v1/grades") for _ in range(40) for client in (a, b))
        )
        after_a = await a.get("/v1/grades")
        after_b = await b.get("/v1/grades")
    codes = [r.status_code for r in responses]
    assert 503 not in codes, "the Redis storage failed during the test"
    assert codes.count(200) == 20  # exactly the quota, across both instances
    assert codes.count(429) == 60
    assert after_a.status_code == after_b.status_code == 429
    assert after_a.headers["ratelimit"].startswith('"default";r=0;t=')
    from_a, from_b = codes[0::2], codes[1::2]  # gather kept the a, b, a, b order
    assert from_a.count(200) > 0
    assert from_b.count(200) > 0  # both instances admitted part of the one quota


async def test_instances_with_other_prefixes_do_not_share(redis_url: str) -> None:
    first = replica(f"{redis_url}?prefix=lms-test:{uuid.uuid4().hex}:")
    second = replica(f"{redis_url}?prefix=lms-test:{uuid.uuid4().hex}:")
    async with service_client(first) as a, service_client(second) as b:
        for _ in range(20):
            await a.get("/v1/grades")
        refused = await a.get("/v1/grades")
        fresh = await b.get("/v1/grades")
    assert refused.status_code == 429
    assert fresh.status_code == 200
