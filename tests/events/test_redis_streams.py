"""The Redis Streams transport beyond the conformance suite: the wire, bad input, faults.

Against the real server (``LMS_TEST_REDIS_URL``, default
``redis://127.0.0.1:6379/0``), each test in its own namespace; the outage
test runs a private ``redis-server`` on a free port (with an append-only
file, so a restart keeps the stream) and stops it by its pid.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import redis.asyncio as aioredis

from lms_shared.clock import SystemClock
from lms_shared.events import (
    Delivery,
    EnvelopeLimits,
    InvalidEvent,
    PublishFailed,
    SubscriptionSpec,
    TransportUnavailable,
    transport_from_url,
)
from lms_shared.events._redis import RedisStreamsTransport
from lms_shared.testing import require_server, server_missing

from .conformance._support import Recorder, eventually, message

URL = os.environ.get("LMS_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
A = "lms.test.alpha"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def namespace() -> str:
    return f"t{uuid.uuid4().hex[:12]}"


@pytest.fixture
def server() -> None:
    parts = urlsplit(URL)
    require_server(
        "Redis", parts.hostname or "127.0.0.1", parts.port or 6379, hint="set LMS_TEST_REDIS_URL"
    )


@contextlib.asynccontextmanager
async def started(
    url: str, namespace: str, **options: object
) -> AsyncIterator[RedisStreamsTransport]:
    options.setdefault("block", 0.2)
    transport = RedisStreamsTransport.from_url(url, namespace=namespace, **options)
    await transport.start()
    try:
        yield transport
    finally:
        await transport.stop()
        await transport.destroy()


@pytest.fixture
async def transport(server: None, namespace: str) -> AsyncIterator[RedisStreamsTransport]:
    async with started(URL, namespace) as running:
        yield running


@pytest.fixture
async def raw(server: None) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(URL)
    try:
        yield client
    finally:
        await client.aclose()


async def until(check: Callable[[], Awaitable[bool]], timeout: float = 10.0) -> None:
    """Poll the async ``check`` until it holds; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(0.01)


# the wire ------------------------------------------------------------------


async def test_entries_carry_the_attributes_as_ce_fields_and_the_data(
    transport: RedisStreamsTransport, raw: aioredis.Redis
) -> None:
    sent = message(A, b"\x00\xff", subject="courses/42", datacontenttype="application/x-bin")
    await transport.publish([sent])
    [(_, fields)] = await raw.xrange(transport.stream)
    assert fields == {
        b"ce_id": sent.id.encode(),
        b"ce_source": b"/tests/conformance",
        b"ce_specversion": b"1.0",
        b"ce_type": A.encode(),
        b"ce_subject": b"courses/42",
        b"ce_datacontenttype": b"application/x-bin",
        b"data": b"\x00\xff",
    }


async def test_the_stream_is_trimmed_to_about_max_length(
    server: None, namespace: str, raw: aioredis.Redis
) -> None:
    async with started(URL, namespace, max_length=10) as transport:
        for _ in range(5):
            await transport.publish([message(A) for _ in range(200)])
        length = await raw.xlen(transport.stream)
        assert 10 <= length < 1000


# bad input -----------------------------------------------------------------


async def test_an_entry_that_is_no_cloudevent_is_dead_lettered_and_the_consumer_goes_on(
    transport: RedisStreamsTransport, raw: aioredis.Redis
) -> None:
    received = Recorder()
    await transport.subscribe(SubscriptionSpec("strict", (A,), concurrency=1), received)
    garbage = [
        {b"ce_type": A.encode(), b"data": b"no id"},
        {b"ce_id": b"\xff\xfe", b"ce_source": b"/s", b"ce_specversion": b"1.0", b"ce_type": A},
        {b"ce_id": b"x", b"ce_source": b"/s", b"ce_specversion": b"1.0", b"ce_Type": A},
        {b"ce_id": b"x", b"ce_source": b"/s", b"ce_specversion": b"1.0", b"attempt": b"-1"},
        {b"junk": b"\x00" * 10},
    ]
    ids = [(await raw.xadd(transport.stream, fields)).decode() for fields in garbage]
    good = message(A)
    await transport.publish([good])
    await eventually(lambda: received.ids() == [good.id])

    async def all_dead() -> bool:
        return bool(await raw.xlen(transport.dead_letter_stream) == len(garbage))

    await until(all_dead)
    dead = {
        fields[b"entry"].decode(): fields
        for _, fields in await raw.xrange(transport.dead_letter_stream)
    }
    assert set(dead) == set(ids)
    reasons = [dead[i][b"reason"].decode() for i in ids]
    assert "'id' is missing" in reasons[0]
    assert "not valid text" in reasons[1]
    assert "'Type' is not lower-case" in reasons[2]
    assert "attempt" in reasons[3]
    assert all(letter[b"group"] == b"strict" for letter in dead.values())
    assert dead[ids[0]][b"field:data"] == b"no id"  # kept whole for inspection
    pending = await raw.xpending(transport.stream, "strict")
    assert pending["pending"] == 0  # every bad entry was acked, none left stuck


async def test_an_oversized_message_is_refused_on_publish_and_on_receipt(
    server: None, namespace: str, raw: aioredis.Redis
) -> None:
    small = EnvelopeLimits(max_bytes=2048)
    async with started(URL, namespace, limits=small) as transport:
        with pytest.raises(InvalidEvent, match="larger than 2048"):
            await transport.publish([message(A), message(A, b"x" * 4096)])
        assert await raw.xlen(transport.stream) == 0  # nothing was sent
        received = Recorder()
        await transport.subscribe(SubscriptionSpec("bounded", (A,), concurrency=1), received)
        big = message(A, b"y" * 4096)
        fields = {f"ce_{k}".encode(): v.encode() for k, v in big.attributes.items()}
        await raw.xadd(transport.stream, {**fields, b"data": big.data})
        fits = message(A, b"z" * 100)
        await transport.publish([fits])
        await eventually(lambda: received.ids() == [fits.id])

        async def dead() -> bool:
            return bool(await raw.xlen(transport.dead_letter_stream) == 1)

        await until(dead)
        [(_, letter)] = await raw.xrange(transport.dead_letter_stream)
        assert b"larger than" in letter[b"reason"]
        assert b"field:data" not in letter  # too large to copy


async def test_rewind_refuses_malformed_starting_points(transport: RedisStreamsTransport) -> None:
    with pytest.raises(ValueError, match="not a redis stream position"):
        await transport.rewind("g", [A], position="12:abc")
    with pytest.raises(ValueError, match="aware"):
        await transport.rewind("g", [A], since=datetime(2026, 1, 1))


# retries and crashes -------------------------------------------------------


async def test_a_retry_waits_in_the_delay_set_with_the_next_attempt(
    transport: RedisStreamsTransport, raw: aioredis.Redis
) -> None:
    parked = asyncio.Event()

    async def park(delivery: Delivery) -> None:
        await delivery.retry(60.0)
        parked.set()

    await transport.subscribe(SubscriptionSpec("parked", (A,)), Recorder(on_delivery=park))
    sent = message(A)
    await transport.publish([sent])
    await asyncio.wait_for(parked.wait(), 10)
    [(member, due)] = await raw.zrange(transport.delay_set("parked"), 0, -1, withscores=True)
    assert sent.id.encode() in member
    assert b"7:attempt1:2" in member
    assert due > time.time() * 1000 + 30_000
    assert await raw.xlen(transport.redo_stream("parked")) == 0
    assert (await raw.xpending(transport.stream, "parked"))["pending"] == 0


CRASHER = """
import asyncio, os, sys
from lms_shared.events import SubscriptionSpec
from lms_shared.events._redis import RedisStreamsTransport

async def main():
    transport = RedisStreamsTransport(sys.argv[1], namespace=sys.argv[2], block=0.2)
    await transport.start()
    async def crash(delivery):
        print(delivery.message.id, delivery.attempt, flush=True)
        os._exit(3)   # no ack: the entry stays pending for the consumer that died
    await transport.subscribe(SubscriptionSpec("crashers", (sys.argv[3],)), crash)
    print("ready", flush=True)
    await asyncio.sleep(60)

asyncio.run(main())
"""


async def test_a_consumer_that_crashes_mid_handler_gets_its_event_reclaimed(
    transport: RedisStreamsTransport, raw: aioredis.Redis
) -> None:
    child = subprocess.Popen(  # noqa: ASYNC220 - a child we wait for with a bound
        [sys.executable, "-c", CRASHER, URL, transport.namespace, A],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        assert child.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(child.stdout.readline), 30)
        assert line.strip() == "ready"
        sent = message(A)
        await transport.publish([sent])
        seen = await asyncio.wait_for(asyncio.to_thread(child.stdout.readline), 30)
        assert seen.split() == [sent.id, "1"]
        assert await asyncio.wait_for(asyncio.to_thread(child.wait), 30) == 3
    finally:
        child.kill()
        child.wait()
        if child.stdout is not None:
            child.stdout.close()
    assert (await raw.xpending(transport.stream, "crashers"))["pending"] == 1
    survivor = Recorder()
    await transport.subscribe(SubscriptionSpec("crashers", (A,), ack_wait=0.5), survivor)
    await eventually(lambda: survivor.ids() == [sent.id])
    assert survivor.seen[0].attempt == 2
    assert survivor.seen[0].position == (await raw.xrange(transport.stream))[0][0].decode()

    async def nothing_pending() -> bool:
        return bool((await raw.xpending(transport.stream, "crashers"))["pending"] == 0)

    await until(nothing_pending)  # the original was acked when it was reclaimed


# stopping ------------------------------------------------------------------


async def finishes(work: Awaitable[object], within: float = 60.0) -> bool:
    """Whether ``work``, run in its own task, ended within ``within`` seconds.

    A bound against a hang, not a timing check: ``asyncio.wait`` returns
    even if ``work`` never does (the task is then cancelled and left).
    """
    task = asyncio.ensure_future(work)
    done, _ = await asyncio.wait([task], timeout=within)
    if not done:
        task.cancel()
        return False
    task.result()  # its exception, if any, fails the test
    return True


def with_client_name(url: str, name: str) -> str:
    """``url`` with redis-py's ``client_name`` option (``CLIENT LIST`` shows it)."""
    return f"{url}{'&' if '?' in url else '?'}client_name={name}"


async def test_stop_ends_the_workers_even_when_a_cancellation_is_lost(
    transport: RedisStreamsTransport,
) -> None:
    # The reclaimer's script call answers in the same loop turn as stop()
    # cancels it: on Python 3.11 ``asyncio.wait_for`` then returns the answer
    # and drops the cancellation, and a ``while True`` worker ran forever.
    entered = asyncio.Event()
    answer: asyncio.Future[list[object]] = asyncio.get_running_loop().create_future()

    async def reclaim(keys: list[str], args: list[object]) -> list[object]:
        entered.set()
        return await answer

    transport._scripts["reclaim"] = reclaim
    subscription = await transport.subscribe(
        SubscriptionSpec("lost", (A,), ack_wait=0.2), Recorder()
    )
    await asyncio.wait_for(entered.wait(), 10)
    answer.set_result([0, b"0-0"])
    assert await finishes(subscription.stop(drain=False))
    assert all(worker.done() for worker in subscription.workers)


async def test_a_handler_that_ignores_its_cancellation_does_not_hold_up_stop(
    server: None, namespace: str
) -> None:
    async with started(URL, namespace, timeout=1.0) as transport:
        inside, release = asyncio.Event(), asyncio.Event()

        async def stubborn(delivery: Delivery) -> None:
            inside.set()
            while not release.is_set():
                with contextlib.suppress(asyncio.CancelledError):
                    await release.wait()
            await delivery.ack()

        subscription = await transport.subscribe(SubscriptionSpec("stubborn", (A,)), stubborn)
        await transport.publish([message(A)])
        await asyncio.wait_for(inside.wait(), 10)
        try:
            assert await finishes(subscription.stop(drain=False))
            assert all(worker.done() for worker in subscription.workers)
            assert len(subscription.tasks) == 1  # left behind, not waited for
        finally:
            release.set()
        await eventually(lambda: len(subscription.tasks) == 0)


async def test_concurrent_and_repeated_stops_finish_and_leave_the_group(
    transport: RedisStreamsTransport, raw: aioredis.Redis
) -> None:
    release = asyncio.Event()

    async def hold(delivery: Delivery) -> None:
        await release.wait()
        await delivery.ack()

    spec = SubscriptionSpec("leavers", (A,), concurrency=1)
    one, other = Recorder(on_delivery=hold), Recorder(on_delivery=hold)
    first = await transport.subscribe(spec, one)
    second = await transport.subscribe(spec, other)
    await transport.publish([message(A), message(A)])
    # Redis creates a consumer with its first entry: each member holds one
    await eventually(lambda: len(one.seen) == 1 and len(other.seen) == 1)
    release.set()

    async def members() -> int:
        return len(await raw.xinfo_consumers(transport.stream, "leavers"))

    async def settled() -> bool:
        return (await raw.xpending(transport.stream, "leavers"))["pending"] == 0

    await until(settled)
    assert await members() == 2
    stops = [first.stop(), transport.stop(), first.stop(drain=False), transport.stop()]
    assert await finishes(asyncio.gather(*stops, second.stop()))
    assert all(worker.done() for s in (first, second) for worker in s.workers)
    # both left the group before the transport closed its connections
    assert await members() == 0
    with pytest.raises(PublishFailed):
        await transport.publish([message(A)])
    await first.stop()
    await transport.stop()


async def test_stop_does_not_wait_out_a_blocking_read(
    server: None, namespace: str, raw: aioredis.Redis
) -> None:
    name = f"{namespace}-reader"

    async def blocked_reads() -> int:
        return sum(
            1
            for c in await raw.client_list()
            if c.get("name") == name and c.get("cmd") == "xreadgroup" and "b" in c["flags"]
        )

    async def blocked() -> bool:
        return await blocked_reads() == 1

    async def released() -> bool:
        return await blocked_reads() == 0

    async with started(with_client_name(URL, name), namespace, block=600.0) as transport:
        subscription = await transport.subscribe(SubscriptionSpec("sleepy", (A,)), Recorder())
        await until(blocked)
        assert await finishes(subscription.stop())  # the read blocks for ten minutes
        assert all(worker.done() for worker in subscription.workers)
        await until(released)  # Redis saw the connection go, nothing waits on it


# a private server that goes away --------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class PrivateRedis:
    """A redis-server on a free loopback port, with an append-only file in ``folder``."""

    def __init__(self, folder: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            server_missing("redis-server is not installed (apt-get install redis-server)")
        self.binary = str(binary)
        self.folder = folder
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.folder),
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2),
            ):
                return
            time.sleep(0.05)
        raise AssertionError("the private redis-server did not start")

    def kill(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)
            self.process = None


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.kill()


async def test_a_server_restart_fails_fast_with_typed_errors_and_loses_nothing(
    private_redis: PrivateRedis, namespace: str
) -> None:
    async with started(private_redis.url, namespace, timeout=1.0) as transport:
        received = Recorder()
        await transport.subscribe(SubscriptionSpec("restart", (A,), concurrency=4), received)
        before = [message(A) for _ in range(5)]
        await transport.publish(before)
        await eventually(lambda: len(received.seen) == 5)

        private_redis.kill()
        with pytest.raises(PublishFailed):
            await transport.publish([message(A)])
        with pytest.raises(TransportUnavailable):
            await transport.ping()

        private_redis.start()  # same port, same append-only file
        await transport.ping()
        after = [message(A) for _ in range(5)]
        await transport.publish(after)
        await eventually(lambda: len(received.seen) >= 10, timeout=20)
        assert sorted(received.ids()) == sorted(m.id for m in before + after)


# options -------------------------------------------------------------------


def test_url_options_and_the_factory() -> None:
    transport = RedisStreamsTransport.from_url(
        "redis://:secret@cache:6379/2?namespace=courses&max_length=none&health_check_interval=5",
        poll=0.5,
    )
    assert transport.namespace == "courses"
    assert transport.max_length is None
    assert transport.poll == 0.5
    assert transport.url == "redis://:secret@cache:6379/2?health_check_interval=5"
    assert "secret" not in repr(transport)
    with pytest.raises(ValueError, match="max_length"):
        RedisStreamsTransport.from_url("redis://cache/0?max_length=lots")
    with pytest.raises(ValueError, match="redis"):
        RedisStreamsTransport("amqp://cache")
    made = transport_from_url(
        "rediss://cache:6380/0", clock=SystemClock(), state_dir=Path("."), namespace="grading"
    )
    assert isinstance(made, RedisStreamsTransport)
    assert made.namespace == "grading"


async def test_hundreds_of_handlers_acking_at_once_lose_no_ack(
    transport: RedisStreamsTransport, raw: aioredis.Redis
) -> None:
    # redis-py's default pool refused the 101st connection: acks failed and the
    # events came back; the transport's pool now makes a command wait its turn
    gate = asyncio.Event()

    async def hold_then_ack(delivery: Delivery) -> None:
        await gate.wait()  # every handler acks at the same moment
        await delivery.ack()

    held = Recorder(on_delivery=hold_then_ack)
    spec = SubscriptionSpec("crowd", (A,), concurrency=300, ack_wait=30.0)
    await transport.subscribe(spec, held)
    await transport.publish([message(A) for _ in range(300)])
    await eventually(lambda: len(held.seen) == 300)
    gate.set()

    async def settled() -> bool:
        pending = await raw.xpending(transport.stream, "crowd")
        return int(pending["pending"]) == 0

    await until(settled)  # every ack landed: nothing pending, so nothing can come back
    assert len(held.seen) == 300  # and nothing was delivered twice meanwhile
