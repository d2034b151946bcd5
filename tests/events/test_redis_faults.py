"""RedisStreamsTransport under faults, on a private redis-server on loopback.

A redis-server with persistence on (an append-only file, ``appendfsync
always``, in a temporary folder) is killed (SIGKILL) while a few hundred
events are published and consumed by a consumer group, then started again
on the same port and folder. Publishing goes on (a failed publish is
retried, as the outbox does), consuming goes on by itself, and every event
Redis acknowledged is delivered at least once (duplicates are allowed:
a retried batch may have been stored in part, an ack may have been lost).

Every wait is bounded; the server is killed by its process id and its
folder removed, whatever happens. Without ``redis-server`` the test skips,
and under ``CI=true`` it fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
import time
from pathlib import Path

import pytest

from lms_shared.events import Delivery, Message, PublishFailed, SubscriptionSpec
from lms_shared.events._redis import RedisStreamsTransport

from ._redis_servers import PrivateRedis, redis_binary
from .conformance._support import eventually, message

pytestmark = pytest.mark.slow

A = "lms.test.alpha"
BATCHES, BATCH = 40, 10  # 400 events


class Consumed:
    """Records every delivered event id, and acks (an ack that fails leaves it pending)."""

    def __init__(self) -> None:
        self.ids: set[str] = set()
        self.deliveries = 0

    async def __call__(self, delivery: Delivery) -> None:
        self.deliveries += 1
        self.ids.add(delivery.message.id)
        await delivery.ack()


async def publish_confirmed(
    transport: RedisStreamsTransport, batch: list[Message], *, timeout: float = 30.0
) -> int:
    """Publish until Redis confirms (as the outbox retries); returns the failures seen."""
    failures = 0
    deadline = time.monotonic() + timeout
    while True:
        try:
            await transport.publish(batch)
            return failures
        except PublishFailed:
            failures += 1
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)


async def test_a_redis_restarted_mid_run_loses_no_acknowledged_event() -> None:
    binary = redis_binary()
    folder = Path(tempfile.mkdtemp(prefix="lms-redis-faults-"))
    server = PrivateRedis(binary, folder)
    try:
        server.start()
        transport = RedisStreamsTransport(
            server.url, namespace="faults", timeout=1.0, block=0.2, poll=0.2
        )
        await transport.start()
        try:
            consumed = Consumed()
            await transport.subscribe(
                SubscriptionSpec("survivors", (A,), concurrency=8, ack_wait=2.0), consumed
            )
            confirmed: list[str] = []
            sent: set[str] = set()
            failures: list[int] = []

            async def publish_batches() -> None:
                for n in range(BATCHES):
                    batch = [message(A, b'{"n": %d}' % n) for _ in range(BATCH)]
                    sent.update(m.id for m in batch)
                    failures.append(await publish_confirmed(transport, batch))
                    confirmed.extend(m.id for m in batch)  # acknowledged by Redis
                    await asyncio.sleep(0.02)

            publisher = asyncio.create_task(publish_batches())
            try:
                await eventually(lambda: len(confirmed) >= 100, timeout=20)
                await eventually(lambda: len(consumed.ids) >= 50, timeout=20)
                server.kill()  # mid-run: the publisher and the consumer are busy
                before_kill = len(confirmed)
                await asyncio.sleep(1.0)  # publishing fails meanwhile, and is retried
                server.start()  # same port, same append-only file
                await asyncio.wait_for(publisher, timeout=60)
            finally:
                publisher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await publisher

            assert len(confirmed) == len(set(confirmed)) == BATCHES * BATCH
            assert before_kill < len(confirmed)  # the kill came while publishing went on
            assert sum(failures) > 0  # and publishing saw it: PublishFailed, then a retry
            await eventually(lambda: set(confirmed) <= consumed.ids, timeout=30)
            assert consumed.ids <= sent  # nothing delivered that was not published
            assert consumed.deliveries >= len(consumed.ids)  # at least once: duplicates allowed
            await transport.ping()
        finally:
            await transport.stop()
    finally:
        server.kill()
        shutil.rmtree(folder, ignore_errors=True)
    assert server.starts == 2
