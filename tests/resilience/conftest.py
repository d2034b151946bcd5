"""Fixtures of the resilience tests: a manual clock, helpers, and the real Redis.

Redis is ``LMS_TEST_REDIS_URL`` (``redis://127.0.0.1:6379/0`` by default);
without it the Redis tests skip, except under ``CI=true`` where they fail.
Every Redis test gets a key prefix of its own.
"""

from __future__ import annotations

import os
import uuid
from urllib.parse import urlsplit

import pytest

from lms_shared.resilience import CircuitBreaker
from lms_shared.testing import require_server

REDIS_URL = os.environ.get("LMS_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture
def redis_url() -> str:
    """The Redis URL, once it answers (skip, or fail under CI, otherwise)."""
    parts = urlsplit(REDIS_URL)
    require_server(
        "Redis", parts.hostname or "127.0.0.1", parts.port or 6379, hint="set LMS_TEST_REDIS_URL"
    )
    return REDIS_URL


@pytest.fixture
def key_prefix() -> str:
    """A Redis key prefix no other test (or run) uses."""
    return f"lms-test:{uuid.uuid4().hex}:"


async def succeed() -> str:
    return "ok"


async def fail() -> str:
    raise ConnectionError("dependency down")


async def record(breaker: CircuitBreaker, *, failures: int = 0, successes: int = 0) -> None:
    """Make calls through ``breaker``: ``successes`` then ``failures``."""
    for _ in range(successes):
        await breaker.call(succeed)
    for _ in range(failures):
        with pytest.raises(ConnectionError):
            await breaker.call(fail)
