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
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from lms_shared.events import Delivery, Message, PublishFailed, SubscriptionSpec
from lms_shared.events._redis import RedisStreamsTransport
from lms_shared.testing import server_missing

from .conformance._support import eventually, message

pytestmark = pytest.mark.slow

A = "lms.test.alpha"
BINARY = "/usr/bin/redis-server"
BATCHES, BATCH = 40, 10  # 400 events


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class PrivateRedis:
    """A persistent redis-server on a free loopback port, its files in ``folder``."""

    def __init__(self, binary: str, folder: Path) -> None:
        self.binary = binary
        self.folder = folder
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> None:
        """Start it (same port, same folder each time) and wait until it accepts connections."""
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
        self.starts += 1
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"redis-server exited with {self.process.returncode}")
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2),
            ):
                return
            time.sleep(0.05)
        raise AssertionError(f"the private redis-server did not start within {timeout} s")

    def kill(self) -> None:
        """SIGKILL it (no shutdown, no last save) and reap it; nothing if it is not running."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=10)


def redis_binary() -> str:
    binary = BINARY if Path(BINARY).is_file() else shutil.which("redis-server")
    if binary is None:
        server_missing("redis-server is not installed (apt-get install redis-server)")
    return binary


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
