"""The NATS JetStream transport's conformance factories (the server on 127.0.0.1:4222)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from lms_shared.events import Transport
from lms_shared.events._nats import NatsTransport
from lms_shared.testing import require_server

NATS_URL = "nats://127.0.0.1:4222"


@asynccontextmanager
async def transport(namespace: str) -> AsyncIterator[Transport]:
    require_server("NATS JetStream", "127.0.0.1", 4222)
    started = NatsTransport(NATS_URL, namespace=namespace, pull_expires=2.0)
    await started.start()
    try:
        yield started
    finally:
        await started.stop()
        await delete_stream(started.stream)


@asynccontextmanager
async def unreachable(namespace: str) -> AsyncIterator[Transport]:
    down = NatsTransport("nats://127.0.0.1:1", namespace=namespace, connect_timeout=1.0)
    try:
        yield down
    finally:
        await down.stop()


async def delete_stream(stream: str) -> None:
    """Remove a test's stream (and so its consumers) from the shared server."""
    import nats
    import nats.js.errors

    nc = await nats.connect(NATS_URL, connect_timeout=2, max_reconnect_attempts=1)
    try:
        await nc.jetstream(timeout=5).delete_stream(stream)
    except nats.js.errors.NotFoundError:
        pass
    finally:
        await nc.close()
