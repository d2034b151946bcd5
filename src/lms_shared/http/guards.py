"""Request body size limit and per-request timeout, as pure ASGI middleware.

Both answer with problems: 413 ``payload-too-large`` and 504 ``timeout``.

Any answer given before the request body was read (a 413, but also a 404,
a 405, a redirect, a 429) is answered *and then the body drained*: a
client that writes its whole request before reading the answer (urllib,
many SDKs) would otherwise meet a connection reset, because closing a
socket with unread data makes the kernel send an RST, and the RST
discards the answer the client has not read yet. So the answer goes out
at once with ``Connection: close``, the remainder of the body is read and
thrown away, up to ``drain_bytes`` and ``drain_seconds`` (a lingering
close, as Apache's and nginx's), and only then is the response completed
and the connection closed. A body declared larger than the bound is not
drained at all: the connection is closed straight after the answer.
:func:`answer_unread` does this for middleware that answers before the
app runs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from fastapi import HTTPException

from lms_shared import errors
from lms_shared.http.problems import ProblemRenderer
from lms_shared.http.watchdog import arm
from lms_shared.observability import get_logger
from lms_shared.types import ASGIApp, Message, Receive, Scope, Send

__all__ = [
    "DRAIN_BYTES",
    "DRAIN_SECONDS",
    "BodyLimitMiddleware",
    "PayloadTooLarge",
    "TimeoutMiddleware",
    "answer_unread",
    "drain",
    "run_bounded",
]

DRAIN_BYTES = 64 << 20
"""Most bytes of an unread body read and discarded before closing (64 MiB)."""
DRAIN_SECONDS = 10.0
"""Longest an unread body is drained before the connection is closed anyway."""
_CLOSE = (b"connection", b"close")


class PayloadTooLarge(HTTPException):
    """Raised from ``receive`` when a streamed body passes the limit.

    It is an ``HTTPException`` so FastAPI's body reader lets it through to
    the problem handlers instead of turning it into a generic 400.
    """

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body exceeds the limit of {limit} bytes")


async def drain(receive: Receive, *, max_bytes: int, seconds: float) -> bool:
    """Read and discard the rest of a request body, within bounds.

    Returns:
        ``True`` when the body ended (or the client left) within the
        bounds, ``False`` when a bound cut it short.
    """
    read = 0
    try:
        async with asyncio.timeout(seconds):
            while True:
                message = await receive()
                if message["type"] != "http.request":
                    return True  # http.disconnect: nothing more will come
                read += len(message.get("body", b""))
                if not message.get("more_body", False):
                    return True
                if read > max_bytes:
                    return False
    except TimeoutError:
        return False


def _body_of(scope: Scope) -> tuple[int | None, bool, bool]:
    """(declared length or None, has a body, client waits for 100 Continue)."""
    length: int | None = None
    chunked = expects = False
    for name, value in scope["headers"]:
        if name == b"content-length":
            length = int(value) if value.isdigit() else None
        elif name == b"transfer-encoding":
            chunked = True
        elif name == b"expect":
            expects = value.lower() == b"100-continue"
    return length, chunked or bool(length), expects


def _lingers(length: int | None, chunked_or_body: bool, expects: bool, bound: int) -> bool:
    # drain only what can be drained: a body within the bound that the client is sending
    # (not one waiting for "100 Continue"); past the bound, closing is the answer
    return chunked_or_body and not expects and (length is None or length <= bound)


async def answer_unread(
    scope: Scope,
    receive: Receive,
    send: Send,
    status: int,
    headers: list[tuple[bytes, bytes]],
    body: bytes,
    *,
    drain_bytes: int = DRAIN_BYTES,
    drain_seconds: float = DRAIN_SECONDS,
) -> None:
    """Send a whole response to a request whose body has not been read.

    Without a request body it is an ordinary response. With one, the
    response says ``Connection: close``, goes out at once, and is completed
    only after the body was drained (within the bounds), so the server's
    close never discards the answer.
    """
    length, has_body, expects = _body_of(scope)
    if not has_body:
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        return
    lingering = drain_seconds > 0 and _lingers(length, has_body, expects, drain_bytes)
    if _CLOSE not in headers:
        headers = [*headers, _CLOSE]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": lingering})
    if lingering:
        await drain(receive, max_bytes=drain_bytes, seconds=drain_seconds)
        await send({"type": "http.response.body", "body": b""})


class BodyLimitMiddleware:
    """Refuse request bodies larger than ``max_bytes`` with a 413 problem.

    A declared ``Content-Length`` over the limit is refused before reading
    anything; a chunked body is counted as it is received. Whenever the
    app answers before it read the whole body (this 413, a 404, a 405, a
    redirect...), the answer says ``Connection: close`` and the rest of
    the body is drained within ``drain_bytes`` and ``drain_seconds``
    before the response completes, so the client reads the answer
    instead of a reset.

    Args:
        app: the wrapped ASGI app.
        max_bytes: largest accepted body.
        renderer: renders the problem response.
        drain_bytes: most bytes of an unread body read and discarded.
        drain_seconds: longest an unread body is drained.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_bytes: int,
        renderer: ProblemRenderer,
        drain_bytes: int = DRAIN_BYTES,
        drain_seconds: float = DRAIN_SECONDS,
    ) -> None:
        if max_bytes <= 0:
            raise ValueError(f"max_bytes must be positive, got {max_bytes}")
        if drain_bytes < 0 or drain_seconds < 0:
            raise ValueError("drain_bytes and drain_seconds must not be negative")
        self.app = app
        self.max_bytes = max_bytes
        self.renderer = renderer
        self.drain_bytes = drain_bytes
        self.drain_seconds = drain_seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        chunked = False
        declared: bytes | None = None
        for name, value in scope["headers"]:
            if name == b"content-length":
                declared = value
            elif name == b"transfer-encoding":
                chunked = True
        if declared is not None and not chunked:
            if not declared.isdigit() or int(declared) > self.max_bytes:
                await self._refuse(scope, receive, send, declared)
                return
            if int(declared) == 0:
                await self.app(scope, receive, send)
                return
        elif not chunked:
            await self.app(scope, receive, send)  # no body
            return

        received = 0
        limit = self.max_bytes
        count = chunked  # a declared length is enforced by the server itself
        ended = False
        expects = _body_of(scope)[2]

        async def tracking_receive() -> Message:
            nonlocal received, ended
            message = await receive()
            if message["type"] == "http.request":
                if not message.get("more_body", False):
                    ended = True
                if count:
                    received += len(message.get("body", b""))
                    if received > limit:
                        raise PayloadTooLarge(limit)
            else:
                ended = True  # the client left
            return message

        closing = False

        async def lingering_send(message: Message) -> None:
            nonlocal closing
            kind = message["type"]
            if kind == "http.response.start" and not ended:
                closing = True  # answered before the body was read
                headers = list(message.get("headers", ()))
                if _CLOSE not in headers:
                    headers.append(_CLOSE)
                message = {**message, "headers": headers}
            elif (
                kind == "http.response.body"
                and closing
                and not ended
                and not expects
                and not message.get("more_body", False)
            ):
                # hold the response open while the rest of the body is drained
                await send({**message, "more_body": True})
                await drain(receive, max_bytes=self.drain_bytes, seconds=self.drain_seconds)
                await send({"type": "http.response.body", "body": b""})
                return
            await send(message)

        await self.app(scope, tracking_receive, lingering_send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, declared: bytes) -> None:
        if declared.isdigit():
            detail = (
                f"request body of {int(declared)} bytes exceeds the limit of {self.max_bytes} bytes"
            )
            code = errors.PAYLOAD_TOO_LARGE
        else:
            detail = "the Content-Length header is not a number"
            code = errors.BAD_REQUEST
        status, headers, body = self.renderer.raw(
            code, detail=detail, instance=scope.get("path"), headers=[_CLOSE]
        )
        await answer_unread(
            scope,
            receive,
            send,
            status,
            headers,
            body,
            drain_bytes=self.drain_bytes,
            drain_seconds=self.drain_seconds,
        )


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
        await run_bounded(self.app, scope, receive, send, self.seconds, self._expired)

    async def _expired(self, scope: Scope, send: Send) -> None:
        self.log.warning("request timed out", timeout_s=self.seconds)
        status, headers, body = self.renderer.raw(
            errors.TIMEOUT,
            detail=f"the request did not complete within {self.seconds:g} seconds",
            instance=scope.get("path"),
        )
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


Expired = Callable[[Scope, Send], Awaitable[None]]


async def run_bounded(
    app: ASGIApp, scope: Scope, receive: Receive, send: Send, seconds: float, expired: Expired
) -> None:
    """Run ``app``; if it has not started its response within ``seconds``, cancel it.

    ``expired(scope, send)`` then answers instead. Cancellations that are
    not this timer's (the server's, a shutdown's) pass through untouched; a
    started response is never cut off. The deadline is kept by the loop's
    :class:`~lms_shared.http.watchdog.Watchdog` (one sweep for every
    request in flight; a timer of its own below a second), not
    ``asyncio.timeout()``, whose context manager reschedules its timer on
    entry and exit. Shared by :class:`TimeoutMiddleware` and the deadline
    middleware.
    """
    task = asyncio.current_task()
    if task is None:
        raise RuntimeError("a bounded request must run inside an asyncio task")
    loop = asyncio.get_running_loop()
    started = False
    fired = False

    def expire() -> None:
        nonlocal fired
        if not started:
            fired = True
            task.cancel()

    cancel = arm(loop, seconds, expire)

    async def send_wrapper(message: Message) -> None:
        nonlocal started
        if not started and message["type"] == "http.response.start":
            started = True
            cancel()
        await send(message)

    try:
        await app(scope, receive, send_wrapper)
    except asyncio.CancelledError:
        if not fired or task.uncancel() > 0 or started:
            raise  # cancelled by someone else (the server, a shutdown), not by us
        await expired(scope, send)
    else:
        if fired:  # the app swallowed our cancellation and finished anyway
            task.uncancel()
    finally:
        cancel()
