"""The RabbitMQ transport beyond the conformance suite: the wire, bad input, faults.

Against the real broker (``LMS_TEST_RABBITMQ_URL``, default
``amqp://guest:guest@127.0.0.1:5672/``), each test in its own namespace. A
broker outage is a TCP proxy in front of it that the test cuts and
restores; a consumer crash is a child process that exits mid-handler.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import aio_pika
import pytest

from lms_shared.clock import SystemClock
from lms_shared.events import (
    Delivery,
    EnvelopeLimits,
    InvalidEvent,
    PublishFailed,
    ReplayUnsupported,
    SubscriptionSpec,
    TransportUnavailable,
    transport_from_url,
)
from lms_shared.events._rabbitmq import ATTEMPT_HEADER, RabbitTransport, _bucket
from lms_shared.testing import require_server

from .conformance._support import Recorder, eventually, message

URL = os.environ.get("LMS_TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/")
A = "lms.test.alpha"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def namespace() -> str:
    return f"t{uuid.uuid4().hex[:12]}"


@pytest.fixture
def broker() -> tuple[str, int]:
    parts = urlsplit(URL)
    host, port = parts.hostname or "127.0.0.1", parts.port or 5672
    require_server("RabbitMQ", host, port, hint="set LMS_TEST_RABBITMQ_URL")
    return host, port


@contextlib.asynccontextmanager
async def started(url: str, namespace: str, **options: object) -> AsyncIterator[RabbitTransport]:
    transport = RabbitTransport.from_url(url, namespace=namespace, **options)
    await transport.start()
    try:
        yield transport
    finally:
        await transport.stop()
        await transport.destroy()


@pytest.fixture
async def transport(broker: tuple[str, int], namespace: str) -> AsyncIterator[RabbitTransport]:
    async with started(URL, namespace) as running:
        yield running


@pytest.fixture
async def raw() -> AsyncIterator[aio_pika.abc.AbstractChannel]:
    """A plain aio-pika channel: a foreign producer and an inspector of queues."""
    connection = await aio_pika.connect(URL, timeout=5)
    try:
        yield await connection.channel()
    finally:
        await connection.close()


async def get_one(
    channel: aio_pika.abc.AbstractChannel, queue: str
) -> aio_pika.abc.AbstractIncomingMessage:
    """The next message of ``queue`` (bounded wait)."""
    source = await channel.get_queue(queue, ensure=False)
    for _ in range(500):
        found = await source.get(no_ack=True, fail=False)
        if found is not None:
            return found
        await asyncio.sleep(0.01)
    raise AssertionError(f"no message in {queue}")


async def exists(kind: str, name: str) -> bool:
    """Whether the broker has the queue or exchange ``name`` (a passive declare)."""
    connection = await aio_pika.connect(URL, timeout=5)
    try:
        channel = await connection.channel()
        try:
            if kind == "queue":
                await channel.declare_queue(name, passive=True)
            else:
                await channel.declare_exchange(name, passive=True)
        except aio_pika.exceptions.ChannelNotFoundEntity:
            return False
        return True
    finally:
        await connection.close()


async def delete_queue(name: str) -> None:
    """Delete a queue the transport under test does not know of."""
    connection = await aio_pika.connect(URL, timeout=5)
    try:
        channel = await connection.channel()
        await channel.queue_delete(name)
    finally:
        await connection.close()


# the wire ------------------------------------------------------------------


async def test_binary_mode_puts_attributes_in_cloudevents_application_properties(
    transport: RabbitTransport, raw: aio_pika.abc.AbstractChannel
) -> None:
    tap = await raw.declare_queue(exclusive=True)
    await tap.bind(transport.exchange_name, A)
    sent = message(
        A, b'{"n": 1}', subject="courses/42", traceparent="00-" + "1" * 32 + "-" + "2" * 16 + "-01"
    )
    await transport.publish([sent])
    got = await get_one(raw, tap.name)
    assert got.body == b'{"n": 1}'
    assert got.content_type == "application/json"
    assert got.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
    headers = dict(got.headers)
    assert headers["cloudEvents:id"] == sent.id
    assert headers["cloudEvents:specversion"] == "1.0"
    assert headers["cloudEvents:type"] == A
    assert headers["cloudEvents:subject"] == "courses/42"
    assert "cloudEvents:datacontenttype" not in headers  # it is the content-type
    assert headers[ATTEMPT_HEADER] == 1
    assert got.routing_key == A


async def test_a_foreign_producer_with_native_values_and_underscores_is_read(
    transport: RabbitTransport, raw: aio_pika.abc.AbstractChannel
) -> None:
    received = Recorder()
    await transport.subscribe(SubscriptionSpec("foreign", (A,)), received)
    exchange = await raw.get_exchange(transport.exchange_name)
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    await exchange.publish(
        aio_pika.Message(
            b"\x00\x01",
            content_type="application/octet-stream",
            headers={
                "cloudEvents_id": "e-1",
                "cloudEvents_source": "/elsewhere",
                "cloudEvents_specversion": "1.0",
                "cloudEvents_type": A,
                "cloudEvents_time": when,
                "cloudEvents_sequence": 42,
                "cloudEvents_urgent": True,
                "cloudEvents_blob": bytearray(b"\xff\x00"),
            },
        ),
        routing_key=A,
    )
    await eventually(lambda: len(received.seen) == 1)
    got = received.seen[0]
    assert dict(got.message.attributes) == {
        "id": "e-1",
        "source": "/elsewhere",
        "specversion": "1.0",
        "type": A,
        "time": "2026-01-02T03:04:05Z",
        "sequence": "42",
        "urgent": "true",
        "blob": "/wA=",
        "datacontenttype": "application/octet-stream",
    }
    assert got.message.data == b"\x00\x01"
    assert got.attempt == 1


# bad input -----------------------------------------------------------------


async def test_a_message_that_is_no_cloudevent_is_dead_lettered_and_the_consumer_goes_on(
    transport: RabbitTransport, raw: aio_pika.abc.AbstractChannel
) -> None:
    received = Recorder()
    await transport.subscribe(SubscriptionSpec("strict", (A,), concurrency=1), received)
    exchange = await raw.get_exchange(transport.exchange_name)
    garbage = [
        aio_pika.Message(b"\xff\xfe not json", headers={"cloudEvents:type": A}),  # no id
        aio_pika.Message(b"", headers={"cloudEvents:id": 3.5, "cloudEvents:type": A}),
        aio_pika.Message(
            b"",
            headers={
                "cloudEvents:id": "x",
                "cloudEvents:source": "/s",
                "cloudEvents:specversion": "1.0",
                "cloudEvents:type": A,
                "cloudEvents:Bad-Name": "v",
            },
        ),
        aio_pika.Message(
            b"",
            headers={
                "cloudEvents:id": "x",
                "cloudEvents:source": "/s",
                "cloudEvents:specversion": "1.0",
                "cloudEvents:type": A,
                ATTEMPT_HEADER: "many",
            },
        ),
    ]
    for bad in garbage:
        await exchange.publish(bad, routing_key=A)
    good = message(A)
    await transport.publish([good])
    await eventually(lambda: received.ids() == [good.id])
    dead = [await get_one(raw, transport.dead_letter_queue) for _ in garbage]
    assert [d.body for d in dead] == [g.body for g in garbage]
    death = dead[0].headers["x-death"]
    assert isinstance(death, list)
    assert death[0]["queue"] == transport.group_queue("strict")
    assert death[0]["reason"] == "rejected"


async def test_an_oversized_message_is_refused_on_publish_and_on_receipt(
    broker: tuple[str, int], namespace: str, raw: aio_pika.abc.AbstractChannel
) -> None:
    small = EnvelopeLimits(max_bytes=2048)
    async with started(URL, namespace, limits=small) as transport:
        with pytest.raises(InvalidEvent, match="larger than 2048"):
            await transport.publish([message(A), message(A, b"x" * 4096)])
        received = Recorder()
        await transport.subscribe(SubscriptionSpec("bounded", (A,), concurrency=1), received)
        exchange = await raw.get_exchange(transport.exchange_name)
        big = message(A, b"y" * 4096)
        await exchange.publish(
            aio_pika.Message(
                big.data, headers={f"cloudEvents:{k}": v for k, v in big.attributes.items()}
            ),
            routing_key=A,
        )
        fits = message(A, b"z" * 100)
        await transport.publish([fits])
        await eventually(lambda: received.ids() == [fits.id])
        dead = await get_one(raw, transport.dead_letter_queue)
        assert dead.body == big.data


async def test_types_that_are_topic_wildcards_are_refused(transport: RabbitTransport) -> None:
    with pytest.raises(ValueError, match="wildcard"):
        await transport.subscribe(SubscriptionSpec("wild", ("lms.*",)), Recorder())
    with pytest.raises(InvalidEvent, match="wildcard"):
        await transport.publish([message("lms.#")])


async def test_rewind_refuses_a_malformed_position(transport: RabbitTransport) -> None:
    with pytest.raises(ValueError, match="not a rabbitmq position"):
        await transport.rewind("g", [A], position="12-0")


# faults --------------------------------------------------------------------


class Proxy:
    """A TCP proxy in front of the broker that a test cuts (refuse and drop) and restores."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.port = 0
        self.server: asyncio.Server | None = None
        self.links: set[asyncio.StreamWriter] = set()

    async def open(self) -> None:
        self.server = await asyncio.start_server(
            self._link, "127.0.0.1", self.port, reuse_address=True
        )
        self.port = self.server.sockets[0].getsockname()[1]

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    async def _link(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self.links |= {writer, up_writer}
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))

    async def cut(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
            self.server = None
        for link in self.links:
            link.transport.abort()
        self.links.clear()


@contextlib.asynccontextmanager
async def behind_proxy(
    broker: tuple[str, int], namespace: str, **options: object
) -> AsyncIterator[tuple[Proxy, RabbitTransport]]:
    """A started transport that reaches the broker through a :class:`Proxy`.

    On the way out the proxy is opened again (a test may leave it cut), so
    the namespace's queues and exchanges are deleted either way.
    """
    proxy = Proxy(*broker)
    await proxy.open()
    parts = urlsplit(URL)
    via = parts._replace(netloc=f"{parts.username}:{parts.password}@127.0.0.1:{proxy.port}")
    url = via.geturl() + "?reconnect_interval=0.2"
    transport = RabbitTransport.from_url(url, namespace=namespace, **options)
    try:
        await transport.start()
        yield proxy, transport
    finally:
        await transport.stop()
        if proxy.server is None:
            await proxy.open()
        await transport.destroy()
        await proxy.cut()


async def test_a_broker_outage_fails_fast_with_typed_errors_and_recovers(
    broker: tuple[str, int], namespace: str
) -> None:
    async with behind_proxy(broker, namespace, timeout=2.0) as (proxy, transport):
        received = Recorder()
        await transport.subscribe(SubscriptionSpec("outage", (A,)), received)
        before = message(A)
        await transport.publish([before])
        await eventually(lambda: received.ids() == [before.id])

        await proxy.cut()
        with pytest.raises(PublishFailed):
            await transport.publish([message(A)])
        with pytest.raises(TransportUnavailable):
            await transport.ping()

        await proxy.open()
        after = message(A)

        async def published() -> bool:
            try:
                await transport.publish([after])
            except PublishFailed:
                return False
            return True

        for _ in range(100):
            if await published():
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("the robust connection did not come back")
        await transport.ping()
        # the robust channel restored the subscription's consumer
        await eventually(lambda: after.id in received.ids(), timeout=15)


async def test_stop_during_an_outage_is_bounded_and_idempotent(
    broker: tuple[str, int], namespace: str
) -> None:
    timeout = 1.0
    async with behind_proxy(broker, namespace, timeout=timeout) as (proxy, transport):
        hold = asyncio.Event()

        async def never_settle(delivery: Delivery) -> None:
            await hold.wait()

        held = Recorder(on_delivery=never_settle)
        groups = [f"g{i}" for i in range(24)]
        for group in groups:
            # ack_wait runs out in the outage: stop() meets nacks that cannot reach the broker
            await transport.subscribe(SubscriptionSpec(group, (A,), ack_wait=0.5), held)
        await transport.publish([message(A)])
        await eventually(lambda: len(held.seen) == len(groups))
        await proxy.cut()
        # the subscriptions stop side by side: about five broker timeouts in all,
        # where one after another would take at least one per subscription (24 s);
        # the bound is loose so a loaded machine never trips it
        await asyncio.wait_for(transport.stop(), 14 * timeout)
        await asyncio.wait_for(transport.stop(), 5 * timeout)  # stopping twice is a no-op
        with pytest.raises(PublishFailed):
            await transport.publish([message(A)])
        with pytest.raises(TransportUnavailable):
            await transport.ping()


CRASHER = """
import asyncio, os, sys
from lms_shared.events import SubscriptionSpec
from lms_shared.events._rabbitmq import RabbitTransport

async def main():
    transport = RabbitTransport(sys.argv[1], namespace=sys.argv[2])
    await transport.start()
    async def crash(delivery):
        print(delivery.message.id, delivery.attempt, flush=True)
        os._exit(3)   # no ack, no goodbye: the broker must hand the message back
    await transport.subscribe(SubscriptionSpec("crashers", (sys.argv[3],)), crash)
    print("ready", flush=True)
    await asyncio.sleep(60)

asyncio.run(main())
"""


async def test_a_consumer_that_crashes_mid_handler_gets_its_event_redelivered(
    transport: RabbitTransport,
) -> None:
    child = subprocess.Popen(  # noqa: ASYNC220 - a child we wait for with a bound
        [sys.executable, "-c", CRASHER, URL, transport.namespace, A],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    survived = False
    try:
        assert child.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(child.stdout.readline), 30)
        assert line.strip() == "ready"
        sent = message(A)
        await transport.publish([sent])
        seen = await asyncio.wait_for(asyncio.to_thread(child.stdout.readline), 30)
        assert seen.split() == [sent.id, "1"]
        assert await asyncio.wait_for(asyncio.to_thread(child.wait), 30) == 3
        survived = True
    finally:
        child.kill()
        child.wait()
        if child.stdout is not None:
            child.stdout.close()
        if not survived:
            # the child declared the group's queue; this transport never did
            await delete_queue(transport.group_queue("crashers"))
    survivor = Recorder()
    await transport.subscribe(SubscriptionSpec("crashers", (A,)), survivor)
    await eventually(lambda: survivor.ids() == [sent.id])
    assert survivor.seen[0].attempt == 2  # the quorum queue counted the return


# options -------------------------------------------------------------------


async def test_retry_goes_through_a_ttl_queue_and_counts_the_attempt(
    transport: RabbitTransport, raw: aio_pika.abc.AbstractChannel
) -> None:
    parked = asyncio.Event()

    async def park(delivery: Delivery) -> None:
        if delivery.attempt == 1:
            await delivery.retry(60.0)
            parked.set()
        else:
            await delivery.ack()

    await transport.subscribe(SubscriptionSpec("parked", (A,)), Recorder(on_delivery=park))
    sent = message(A)
    await transport.publish([sent])
    await asyncio.wait_for(parked.wait(), 10)
    waiting = await raw.declare_queue(f"{transport.namespace}.retry.parked.60000", passive=True)
    assert waiting.declaration_result.message_count == 1
    copy = await get_one(raw, waiting.name)
    assert copy.headers[ATTEMPT_HEADER] == 2
    assert copy.headers["cloudEvents:id"] == sent.id


async def test_destroy_deletes_the_namespace_retry_queues_included(
    broker: tuple[str, int], namespace: str
) -> None:
    transport = RabbitTransport(URL, namespace=namespace)
    await transport.start()
    try:
        parked = asyncio.Event()

        async def park(delivery: Delivery) -> None:
            await delivery.retry(60.0)
            parked.set()

        await transport.subscribe(SubscriptionSpec("tidy", (A,)), park)
        await transport.publish([message(A)])
        await asyncio.wait_for(parked.wait(), 10)
    finally:
        await transport.stop()
        await transport.destroy()
    queues = [
        transport.group_queue("tidy"),
        f"{namespace}.retry.tidy.60000",
        transport.dead_letter_queue,
        transport.history_stream,
    ]
    assert [name for name in queues if await exists("queue", name)] == []
    exchanges = [transport.exchange_name, f"{namespace}.dead-letter"]
    assert [name for name in exchanges if await exists("exchange", name)] == []


def test_retry_delays_round_to_two_significant_digits() -> None:
    assert [_bucket(d) for d in (0, 0.0004, 0.05, 0.1234, 1.26, 37.5, 3600)] == [
        1,
        1,
        50,
        120,
        1300,
        38000,
        3_600_000,
    ]


async def test_a_classic_queue_counts_an_ack_wait_redelivery_by_republishing(
    broker: tuple[str, int], namespace: str
) -> None:
    async with started(URL, namespace, queue_type="classic") as transport:

        async def forget_twice(delivery: Delivery) -> None:
            if delivery.attempt >= 3:
                await delivery.ack()

        received = Recorder(on_delivery=forget_twice)
        await transport.subscribe(SubscriptionSpec("classic", (A,), ack_wait=0.3), received)
        sent = message(A)
        await transport.publish([sent])
        await eventually(lambda: len(received.seen) == 3)
        assert [d.attempt for d in received.seen] == [1, 2, 3]


async def test_without_history_rewind_is_unsupported(
    broker: tuple[str, int], namespace: str
) -> None:
    async with started(URL, namespace, history=False) as transport:
        assert transport.keeps_history is False
        with pytest.raises(ReplayUnsupported):
            await transport.rewind("g", [A], since=datetime.now(UTC))


def test_url_options_and_the_factory() -> None:
    transport = RabbitTransport.from_url(
        "amqp://u:secret@broker:5672/vh?namespace=courses&history=false&heartbeat=30",
        timeout=3.0,
    )
    assert transport.namespace == "courses"
    assert transport.keeps_history is False
    assert transport.timeout == 3.0
    assert transport.url == "amqp://u:secret@broker:5672/vh?heartbeat=30"
    assert "secret" not in repr(transport)
    with pytest.raises(ValueError, match="history"):
        RabbitTransport.from_url("amqp://broker/?history=maybe")
    with pytest.raises(ValueError, match="amqp"):
        RabbitTransport("redis://broker")
    made = transport_from_url(
        "amqps://u:p@broker/", clock=SystemClock(), state_dir=Path("."), namespace="grading"
    )
    assert isinstance(made, RabbitTransport)
    assert made.namespace == "grading"
