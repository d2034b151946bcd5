"""Run a service in-process for tests: lifespan and an HTTP client.

The client is httpx over its ASGI transport, so requests go through the
service's whole middleware stack without a socket, and the lifespan runs
exactly as a server would run it (components started in order, stopped in
reverse after the last request).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx

from lms_shared.service import Service

__all__ = ["LifespanError", "lifespan", "service_client"]


class LifespanError(RuntimeError):
    """The app's lifespan startup or shutdown failed; ``message`` says why."""


@asynccontextmanager
async def lifespan(app: Any, *, timeout: float = 30.0) -> AsyncIterator[None]:
    """Drive an ASGI app's lifespan protocol: startup on enter, shutdown on exit.

    Raises:
        LifespanError: the app reported ``lifespan.startup.failed`` (or
            shutdown failed); the exception message is the app's message.
    """
    to_app: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    from_app: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def receive() -> dict[str, Any]:
        return await to_app.get()

    async def send(message: dict[str, Any]) -> None:
        await from_app.put(message)

    scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
    task = asyncio.create_task(app(scope, receive, send))
    await to_app.put({"type": "lifespan.startup"})
    async with asyncio.timeout(timeout):
        message = await from_app.get()
    if message["type"] == "lifespan.startup.failed":
        try:
            await task
        except Exception as exc:
            raise LifespanError(message.get("message") or repr(exc)) from exc
        raise LifespanError(message.get("message", "startup failed"))
    try:
        yield
    finally:
        await to_app.put({"type": "lifespan.shutdown"})
        async with asyncio.timeout(timeout):
            message = await from_app.get()
            await task
        if message["type"] == "lifespan.shutdown.failed":
            raise LifespanError(message.get("message", "shutdown failed"))


@asynccontextmanager
async def service_client(
    service: Service, *, start: bool = True, **client_kwargs: Any
) -> AsyncIterator[httpx.AsyncClient]:
    """A started service and an ``httpx.AsyncClient`` that talks to it.

    Args:
        service: the service under test.
        start: run the lifespan (components start and stop); ``False``
            tests the app as it is before start-up.
        **client_kwargs: passed to :class:`httpx.AsyncClient` (headers, ...).
    """
    transport = httpx.ASGITransport(app=service.app, raise_app_exceptions=False)
    base_url = f"http://{service.name}.test"
    async with httpx.AsyncClient(transport=transport, base_url=base_url, **client_kwargs) as client:
        if start:
            async with lifespan(service.app):
                yield client
        else:
            yield client
