"""NatsTransport under faults, on private nats-server processes on loopback.

* A three-server JetStream cluster, a stream of three replicas: the stream's
  leader is killed (SIGKILL) while events are published and consumed, then
  started again. Publishing goes on (a failed publish is retried, as the
  outbox does), consuming goes on, and every event JetStream acknowledged
  is delivered.
* One server killed and restarted on its store: the client reconnects and
  the subscription goes on by itself.

Every wait is bounded; the servers are stopped by their process ids.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from lms_shared.events import (
    Delivery,
    Message,
    PublishFailed,
    SubscriptionSpec,
    TransportUnavailable,
)
from lms_shared.events._nats import NatsTransport

from ._nats_servers import NatsNode, cluster, free_port, nats_server_binary
from .conformance._support import eventually, message

__all__ = ["cluster"]  # a fixture, used by name

pytestmark = pytest.mark.slow

A = "lms.test.alpha"


async def start_when_ready(transport: NatsTransport, *, timeout: float = 30.0) -> None:
    """Start once the cluster elected its JetStream leaders (bounded)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            await transport.start()
            return
        except TransportUnavailable:
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.5)


async def publish_confirmed(
    transport: NatsTransport, batch: list[Message], *, timeout: float = 60.0
) -> int:
    """Publish until JetStream confirms (as the outbox retries); returns the failures seen."""
    failures = 0
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            await transport.publish(batch)
            return failures
        except PublishFailed:
            failures += 1
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.2)


class Consumed:
    """Records every delivered event id, and acks."""

    def __init__(self) -> None:
        self.ids: set[str] = set()
        self.deliveries = 0

    async def __call__(self, delivery: Delivery) -> None:
        self.deliveries += 1
        self.ids.add(delivery.message.id)
        await delivery.ack()


async def test_killing_the_stream_leader_loses_nothing_acknowledged(
    cluster: list[NatsNode],
) -> None:
    transport = NatsTransport(
        [node.url for node in cluster],
        namespace="faults",
        replicas=3,
        pull_expires=1.0,
        publish_timeout=5.0,
        request_timeout=5.0,
    )
    await start_when_ready(transport)
    consumed = Consumed()
    try:
        await transport.subscribe(
            SubscriptionSpec("survivors", (A,), concurrency=16, ack_wait=5.0), consumed
        )
        confirmed: list[str] = []

        async def publish_batches(count: int) -> int:
            failures = 0
            for _ in range(count):
                batch = [message(A, b'{"n": 1}') for _ in range(20)]
                failures += await publish_confirmed(transport, batch)
                confirmed.extend(m.id for m in batch)
            return failures

        await publish_batches(25)
        await eventually(lambda: len(consumed.ids) >= 250, timeout=30)

        assert transport._js is not None
        info = await transport._js.stream_info(transport.stream)
        assert info.cluster is not None
        assert info.cluster.leader
        leader = next(node for node in cluster if node.name == info.cluster.leader)
        leader.kill()
        await publish_batches(25)  # publishing goes on without the old leader
        before_restart = set(confirmed)
        await eventually(lambda: before_restart <= consumed.ids, timeout=60)

        leader.start(nats_server_binary())
        await publish_batches(25)
        await eventually(lambda: set(confirmed) <= consumed.ids, timeout=60)
        assert len(confirmed) == 1500
        assert consumed.deliveries >= len(set(confirmed))
    finally:
        await transport.stop()


async def test_a_restarted_server_is_reconnected_and_the_subscription_goes_on(
    tmp_path: Path,
) -> None:
    node = NatsNode("solo", free_port(), free_port(), tmp_path / "solo")
    node.start(nats_server_binary())
    transport = NatsTransport(node.url, namespace="restart", pull_expires=1.0, publish_timeout=3.0)
    try:
        await start_when_ready(transport)
        consumed = Consumed()
        await transport.subscribe(SubscriptionSpec("steady", (A,), concurrency=4), consumed)
        first = [message(A) for _ in range(50)]
        await publish_confirmed(transport, first)
        await eventually(lambda: {m.id for m in first} <= consumed.ids, timeout=20)

        node.kill()
        with pytest.raises(PublishFailed):
            await transport.publish([message(A)])  # nobody to confirm it
        node.start(nats_server_binary())

        second = [message(A) for _ in range(50)]
        await publish_confirmed(transport, second, timeout=30)
        await eventually(lambda: {m.id for m in second} <= consumed.ids, timeout=30)
        await transport.ping()
    finally:
        await transport.stop()
        node.kill()
