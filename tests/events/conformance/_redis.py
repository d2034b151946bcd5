"""The Redis Streams transport's conformance factories (a real server, one namespace per test)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import urlsplit

from lms_shared.events import Transport
from lms_shared.events._redis import RedisStreamsTransport
from lms_shared.testing import require_server

URL = os.environ.get("LMS_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@asynccontextmanager
async def transport(namespace: str) -> AsyncIterator[Transport]:
    parts = urlsplit(URL)
    require_server(
        "Redis", parts.hostname or "127.0.0.1", parts.port or 6379, hint="set LMS_TEST_REDIS_URL"
    )
    started = RedisStreamsTransport(URL, namespace=namespace, block=0.5)
    await started.start()
    try:
        yield started
    finally:
        await started.stop()
        await started.destroy()


@asynccontextmanager
async def unreachable(namespace: str) -> AsyncIterator[Transport]:
    down = RedisStreamsTransport("redis://127.0.0.1:1/0", namespace=namespace, timeout=1.0)
    try:
        yield down
    finally:
        await down.stop()
