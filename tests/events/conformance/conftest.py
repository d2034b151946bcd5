"""The transport conformance suite: every backend passes the same tests.

Adding a backend takes two steps:

1. a module ``tests/events/conformance/_<name>.py`` with two async context
   manager factories, each taking a unique ``namespace`` (lower-case
   ``a-z0-9``, use it to prefix streams, queues, keys, files)::

       @asynccontextmanager
       async def transport(namespace: str) -> AsyncIterator[Transport]:
           require_server("NATS", "127.0.0.1", 4222)   # skip, or fail under CI
           t = NatsTransport("nats://127.0.0.1:4222", namespace=namespace)
           await t.start()
           try:
               yield t          # started; the test may stop it itself
           finally:
               await t.stop()   # must be idempotent
               ...              # delete the namespace's streams/queues/keys

       @asynccontextmanager
       async def unreachable(namespace: str) -> AsyncIterator[Transport]:
           yield NatsTransport("nats://127.0.0.1:1", namespace=namespace)  # NOT started

2. one line in :data:`FACTORIES` below: ``"nats": backend("nats"),``.

The tests use real time with short bounded waits (``eventually``), so they
hold on any broker; the memory transport runs them on the system clock.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from lms_shared.events import Transport

from ._support import Backend


def backend(name: str) -> Backend:
    """The backend whose factories live in ``_<name>.py`` (imported when a test runs)."""
    return Backend(f"_{name}")


FACTORIES: dict[str, Backend] = {
    "memory": backend("memory"),
    "nats": backend("nats"),
    "log": backend("log"),
    "redis": backend("redis"),
    "rabbitmq": backend("rabbitmq"),
}


@pytest.fixture(params=sorted(FACTORIES))
def backend_under_test(request: pytest.FixtureRequest) -> Backend:
    """The backend each conformance test runs against."""
    return FACTORIES[request.param]


@pytest.fixture
def namespace() -> str:
    """A namespace no other test uses."""
    return f"t{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def transport(backend_under_test: Backend, namespace: str) -> AsyncIterator[Transport]:
    """A started transport of each backend, in a fresh namespace."""
    async with backend_under_test.transport(namespace) as started:
        yield started
