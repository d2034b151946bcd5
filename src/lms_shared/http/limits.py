"""Request body size limit and per-request timeout, as pure ASGI middleware.

Both answer with problems: 413 ``payload-too-large`` and 504 ``timeout``.
"""

from __future__ import annotations

import asyncio

from fastapi import HTTPException

from lms_shared import errors
from lms_shared.http.problems import ProblemRenderer
from lms_shared.http.types import ASGIApp, Message, Receive, Scope, Send
from lms_shared.observability import get_logger

__all__ = ["BodyLimitMiddleware", "PayloadTooLarge", "TimeoutMiddleware"]


class PayloadTooLarge(HTTPException):
    """Raised from ``receive`` when a streamed body passes the limit.

    It is an ``HTTPException`` so FastAPI's body reader lets it through to
    the problem handlers instead of turning it into a generic 400.
    """

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body exceeds the limit of {limit} bytes")


class BodyLimitMiddleware:
    """Refuse request bodies larger than ``max_bytes`` with a 413 problem.

    A declared ``Content-Length`` over the limit is refused before reading
    anything; a chunked body is counted as it is received.

    Args:
        app: the wrapped ASGI app.
        max_bytes: largest accepted body.
        renderer: renders the problem response.
    """

    def __init__(self, app: ASGIApp, *, max_bytes: int, renderer: ProblemRenderer) -> None:
        if max_bytes <= 0:
            raise ValueError(f"max_bytes must be positive, got {max_bytes}")
        self.app = app
        self.max_bytes = max_bytes
        self.renderer = renderer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        chunked = False
        for name, value in scope["headers"]:
            if name == b"content-length":
                if not value.isdigit() or int(value) > self.max_bytes:
                    await self._refuse(scope, send, value)
                    return
                # the server enforces the declared length: no need to count
                await self.app(scope, receive, send)
                return
            if name == b"transfer-encoding":
                chunked = True
        if not chunked:
            await self.app(scope, receive, send)
            return

        received = 0
        limit = self.max_bytes

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise PayloadTooLarge(limit)
            return message

        await self.app(scope, counting_receive, send)

    async def _refuse(self, scope: Scope, send: Send, declared: bytes) -> None:
        if declared.isdigit():
            detail = (
                f"request body of {int(declared)} bytes exceeds the limit of {self.max_bytes} bytes"
            )
        else:
            detail = "the Content-Length header is not a number"
        code = errors.PAYLOAD_TOO_LARGE if declared.isdigit() else errors.BAD_REQUEST
        status, headers, body = self.renderer.raw(
            code, detail=detail, instance=scope.get("path"), headers=[(b"connection", b"close")]
        )
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


class TimeoutMiddleware:
    """Answer 504 when a request has not started its response in time.

    The timer covers the time to the first response byte; a response that
    has started (a stream, say) is not cut off by it.

    Args:
        app: the wrapped ASGI app.
        seconds: the time budget of one request.
        renderer: renders the problem response.
    """

    def __init__(self, app: ASGIApp, *, seconds: float, renderer: ProblemRenderer) -> None:
        if seconds <= 0:
            raise ValueError(f"seconds must be positive, got {seconds}")
        self.app = app
        self.seconds = seconds
        self.renderer = renderer
        self.log = get_logger("lms.timeout")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # one timer handle instead of asyncio.timeout(): the context manager
        # reschedules its timer on entry and exit, which costs measurably per request
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("TimeoutMiddleware must run inside an asyncio task")
        loop = asyncio.get_running_loop()
        started = False
        expired = False

        def expire() -> None:
            nonlocal expired
            if not started:
                expired = True
                task.cancel()

        handle = loop.call_at(loop.time() + self.seconds, expire)

        async def send_wrapper(message: Message) -> None:
            nonlocal started
            if not started and message["type"] == "http.response.start":
                started = True
                handle.cancel()
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        except asyncio.CancelledError:
            if not expired or task.uncancel() > 0 or started:
                raise  # cancelled by someone else (the server, a shutdown), not by us
            self.log.warning("request timed out", timeout_s=self.seconds)
            status, headers, body = self.renderer.raw(
                errors.TIMEOUT,
                detail=f"the request did not complete within {self.seconds:g} seconds",
                instance=scope.get("path"),
            )
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": body})
        else:
            if expired:  # the app swallowed our cancellation and finished anyway
                task.uncancel()
        finally:
            handle.cancel()
