"""The RabbitMQ transport's conformance factories (a real broker, one namespace per test)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import urlsplit

from lms_shared.events import Transport
from lms_shared.events._rabbitmq import RabbitTransport
from lms_shared.testing import require_server

URL = os.environ.get("LMS_TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/")


@asynccontextmanager
async def transport(namespace: str) -> AsyncIterator[Transport]:
    parts = urlsplit(URL)
    require_server(
        "RabbitMQ",
        parts.hostname or "127.0.0.1",
        parts.port or 5672,
        hint="set LMS_TEST_RABBITMQ_URL",
    )
    started = RabbitTransport(URL, namespace=namespace, timeout=10.0)
    await started.start()
    try:
        yield started
    finally:
        await started.stop()
        await started.destroy()


@asynccontextmanager
async def unreachable(namespace: str) -> AsyncIterator[Transport]:
    down = RabbitTransport(
        "amqp://guest:guest@127.0.0.1:1/", namespace=namespace, connect_timeout=1.0
    )
    try:
        yield down
    finally:
        await down.stop()
