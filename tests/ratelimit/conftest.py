"""Rate-limit storage backends for the contract tests: memory and real Redis.

Redis is ``LMS_TEST_REDIS_URL`` (``redis://127.0.0.1:6379/0`` by default).
When it does not answer the Redis tests skip with the reason, except under
``CI=true`` where the machine is required to run it and they fail.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import pytest

from lms_shared.ratelimit import MemoryStorage, RateLimitStorage, storage_from_url
from lms_shared.testing import server_missing

REDIS_URL = os.environ.get("LMS_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def redis_available() -> str | None:
    """``None`` when Redis answers, else the reason it does not."""
    parts = urlsplit(REDIS_URL)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 6379), 1):
            return None
    except OSError as exc:
        return f"Redis is not reachable at {REDIS_URL} ({exc})"


def require_redis() -> None:
    """Skip the test without Redis, or fail it under ``CI=true``."""
    reason = redis_available()
    if reason is not None:
        server_missing(reason)


def unique_prefix() -> str:
    """A key prefix no other test (or run) uses."""
    return f"lms-test:{uuid.uuid4().hex}:"


@pytest.fixture
def redis_url() -> str:
    """The Redis URL, after checking it answers."""
    require_redis()
    return REDIS_URL


@pytest.fixture
def key_prefix() -> str:
    """A Redis key prefix of this test alone."""
    return unique_prefix()


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def storage(request: pytest.FixtureRequest) -> AsyncIterator[RateLimitStorage]:
    """Each backend in turn, started, with keys of its own."""
    if request.param == "memory":
        backend: RateLimitStorage = MemoryStorage()
    else:
        require_redis()
        backend = storage_from_url(REDIS_URL, prefix=unique_prefix())
    await backend.start()
    try:
        yield backend
    finally:
        await backend.stop()
