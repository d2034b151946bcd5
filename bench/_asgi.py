"""Drive an ASGI app in process: lifespan, then N prebuilt GET requests.

No sockets and no server: what is left is the framework's own cost per
request, the least noisy number the machine can give.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from starlette.types import ASGIApp, Message

__all__ = ["drive", "http_scope", "running"]


def http_scope(path: str) -> dict[str, Any]:
    """The scope uvicorn builds for ``GET path`` (minus the per-request state)."""
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 50000),
        "scheme": "http",
        "root_path": "",
        "method": "GET",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [(b"host", b"127.0.0.1:8000")],
    }


@asynccontextmanager
async def running(app: ASGIApp) -> AsyncIterator[None]:
    """Run the app's lifespan startup, and its shutdown on exit."""
    inbox: asyncio.Queue[Message] = asyncio.Queue()
    outbox: asyncio.Queue[Message] = asyncio.Queue()
    scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}, "state": {}}
    task = asyncio.ensure_future(app(scope, inbox.get, outbox.put))
    await inbox.put({"type": "lifespan.startup"})
    reply = await outbox.get()
    if reply["type"] != "lifespan.startup.complete":
        raise RuntimeError(f"lifespan startup failed: {reply}")
    try:
        yield
    finally:
        await inbox.put({"type": "lifespan.shutdown"})
        await outbox.get()
        await task


async def drive(app: ASGIApp, scope: dict[str, Any], count: int) -> tuple[float, int]:
    """Send ``count`` requests; return the CPU seconds taken and non-200 answers.

    CPU time of this thread, not wall time: time the OS gives to other
    processes of a shared machine is not counted.
    """
    request: Message = {"type": "http.request", "body": b"", "more_body": False}
    failed = 0

    async def receive() -> Message:
        return request

    async def send(message: Message) -> None:
        nonlocal failed
        if message["type"] == "http.response.start" and message["status"] != 200:
            failed += 1

    started = time.thread_time()
    for _ in range(count):
        await app({**scope, "state": {}}, receive, send)
    return time.thread_time() - started, failed
