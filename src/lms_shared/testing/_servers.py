"""The one rule for tests that need a real server: skip on a laptop, fail under CI.

A test (or fixture) that needs PostgreSQL, Redis, NATS, RabbitMQ, etcd or
any other server calls :func:`require_server` with the server's address.
When the server answers, nothing happens. When it does not, the test is
skipped with the reason on a developer's machine, and fails under
``CI=true``, where every server must be there (a skip in CI would hide a
test that never ran).
"""

from __future__ import annotations

import os
import socket
from typing import NoReturn

__all__ = ["in_ci", "require_server", "server_missing", "tcp_unreachable"]


def in_ci() -> bool:
    """Whether the tests run under CI (``CI=true``, as CI systems set it)."""
    return os.environ.get("CI", "").strip().lower() in {"true", "1", "yes"}


def server_missing(reason: str) -> NoReturn:
    """Skip the current test because a server is missing, or fail it under CI.

    Args:
        reason: what is missing and how to provide it, e.g.
            ``"NATS is not reachable at 127.0.0.1:4222"``.
    """
    import pytest  # noqa: PLC0415 (this module is importable without pytest)

    if in_ci():
        pytest.fail(f"{reason}; CI=true requires it", pytrace=False)
    pytest.skip(reason)


def tcp_unreachable(host: str, port: int, *, timeout: float = 1.0) -> str | None:
    """Why ``host:port`` does not accept a TCP connection, or ``None`` when it does."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except OSError as exc:
        return f"{host}:{port} is unreachable ({exc})"


def require_server(what: str, host: str, port: int, *, hint: str = "") -> None:
    """Skip (or fail under CI) unless ``what`` answers on ``host:port``.

    Args:
        what: the server's name, for the message (``"Redis"``).
        host: its address.
        port: its TCP port.
        hint: how to point the tests elsewhere (``"set LMS_TEST_REDIS_URL"``).
    """
    reason = tcp_unreachable(host, port)
    if reason is not None:
        server_missing(f"{what} at {reason}" + (f"; {hint}" if hint else ""))
