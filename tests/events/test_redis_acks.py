"""Coalesced acks of the Redis Streams transport: one ``XACK`` per tick, all sent at stop.

Against the real server (``LMS_TEST_REDIS_URL``, default
``redis://127.0.0.1:6379/0``), each test in its own namespace.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import pytest
import redis.asyncio as aioredis

from lms_shared.events import Delivery, SubscriptionSpec
from lms_shared.events._redis import RedisStreamsTransport
from lms_shared.testing import require_server

from .conformance._support import Recorder, eventually, message

pytestmark = pytest.mark.redis

URL = os.environ.get("LMS_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
A = "lms.test.alpha"
COUNT = 40


@pytest.fixture
async def transport() -> AsyncIterator[RedisStreamsTransport]:
    parts = urlsplit(URL)
    require_server(
        "Redis", parts.hostname or "127.0.0.1", parts.port or 6379, hint="set LMS_TEST_REDIS_URL"
    )
    running = RedisStreamsTransport(URL, namespace=f"t{uuid.uuid4().hex[:12]}", block=0.2)
    await running.start()
    try:
        yield running
    finally:
        await running.stop()
        await running.destroy()


def count_xacks(transport: RedisStreamsTransport, delay: float = 0.0) -> list[int]:
    """Wrap the transport's ``XACK``: the ids of each call, in order (sent ``delay`` s late)."""
    calls: list[int] = []
    client: Any = transport._client
    xack = client.xack

    async def counted(stream: str, group: str, *ids: str) -> Any:
        calls.append(len(ids))
        if delay:
            await asyncio.sleep(delay)  # a slow round trip
        return await xack(stream, group, *ids)

    client.xack = counted
    return calls


async def pending(transport: RedisStreamsTransport, group: str) -> int:
    """Entries of ``group`` Redis still counts as delivered and not acked."""
    raw = aioredis.Redis.from_url(URL)
    try:
        summary = await raw.xpending(transport.stream, group)
        return int(summary["pending"])
    finally:
        await raw.aclose()


async def test_the_acks_of_one_tick_go_out_as_one_xack(transport: RedisStreamsTransport) -> None:
    held: list[Delivery] = []
    recorder = Recorder(ack=False, seen=held)
    spec = SubscriptionSpec("acks", (A,), concurrency=COUNT)
    subscription = await transport.subscribe(spec, recorder)
    calls = count_xacks(transport)
    await transport.publish([message(A) for _ in range(COUNT)])
    await eventually(lambda: len(held) == COUNT)
    for delivery in held:  # all in one tick: nothing here waits for Redis
        await delivery.ack()
    await eventually(lambda: sum(calls) == COUNT)
    assert calls == [COUNT]
    await subscription.stop()
    assert await pending(transport, "acks") == 0


async def test_acks_still_queued_are_sent_before_stop_returns(
    transport: RedisStreamsTransport,
) -> None:
    held: list[Delivery] = []
    recorder = Recorder(ack=False, seen=held)
    await transport.subscribe(SubscriptionSpec("drain", (A,), concurrency=COUNT), recorder)
    calls = count_xacks(transport, delay=0.3)
    await transport.publish([message(A) for _ in range(COUNT)])
    await eventually(lambda: len(held) == COUNT)
    for delivery in held:
        await delivery.ack()
    await transport.stop()  # at once: the acks are still on their (slow) way
    assert sum(calls) == COUNT
    assert await pending(transport, "drain") == 0


async def test_a_backlog_of_acks_waits_for_the_sender(transport: RedisStreamsTransport) -> None:
    held: list[Delivery] = []
    recorder = Recorder(ack=False, seen=held)
    total = 150  # more than the queue holds (64 here): the last acks wait
    subscription = await transport.subscribe(
        SubscriptionSpec("backlog", (A,), concurrency=16), recorder
    )
    calls = count_xacks(transport, delay=0.05)
    await transport.publish([message(A) for _ in range(total)])
    await eventually(lambda: len(held) == total)
    for delivery in held:
        await delivery.ack()
    assert len(calls) >= 2  # waited for a round trip on the way
    await subscription.stop()
    assert sum(calls) == total
    assert await pending(transport, "backlog") == 0
