"""The outermost middleware: request id, access log, drain, last-resort 500.

One pure ASGI middleware (never ``BaseHTTPMiddleware``, which breaks
context variables) does the work every request needs, so the per-request
cost is one wrapped ``send`` and one log line:

* ``X-Request-ID``: accepted when well-formed, generated otherwise, echoed
  on the response and bound into every log line of the request;
* one JSON access log line: service, version, request id, method, route
  template (never the raw path), status and duration;
* ``Deprecation``/``Sunset``/``Link`` headers of deprecated routes;
* draining: while the service shuts down new requests get a 503 problem;
* an exception no handler took becomes a 500 problem that leaks nothing,
  and is logged once with its traceback;
* given the service's tracing, the request's SERVER span around all of it
  (:func:`~lms_shared.http.tracing.open_server_span`), so the access line
  carries the trace id, and given its metrics recorder, the request's
  histogram sample: one layer instead of three on every request.
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Callable

from lms_shared import errors
from lms_shared.http.problems import ProblemRenderer
from lms_shared.http.routes import route_template
from lms_shared.http.state import RuntimeState
from lms_shared.http.tracing import close_server_span, open_server_span
from lms_shared.observability import LineWriter, get_logger
from lms_shared.observability._tracing import Tracing
from lms_shared.observability.context import request_id_var
from lms_shared.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["REQUEST_ID_HEADER", "RequestMiddleware", "route_template", "valid_request_id"]

REQUEST_ID_HEADER = "x-request-id"
_HEADER = REQUEST_ID_HEADER.encode()
_VALID_ID = re.compile(rb"[A-Za-z0-9._:\-]{1,128}")
_NOT_LOGGED = frozenset({"/health/live", "/health/ready", "/health/startup"})

_bits = random.getrandbits

HeaderLookup = Callable[[object], list[tuple[bytes, bytes]]]
Recorder = Callable[[Scope, "str | None", int, float], None]


def valid_request_id(value: bytes) -> bool:
    """Whether a client-sent request id is safe to reuse.

    1 to 128 characters of ``A-Z a-z 0-9 . _ : -``; anything else (control
    characters, spaces, quotes, overlong values) is replaced by a new id.
    """
    return _VALID_ID.fullmatch(value) is not None


class RequestMiddleware:
    """Request id, access log, drain and last-resort problem handling.

    Args:
        app: the wrapped ASGI app.
        service: service name, on every access log line.
        version: service version, on every access log line.
        renderer: renders problem responses.
        state: the service's runtime state (in-flight count, draining).
        extra_headers: given a matched route object, the headers to add
            (deprecation); called once per route and cached.
        tracing: the service's tracing: each request gets its SERVER span here.
        record: called with each finished request's scope, route, status and
            seconds (the service's :class:`~lms_shared.http.metrics.RequestRecorder`),
            inside its request id and span.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        service: str,
        version: str,
        renderer: ProblemRenderer,
        state: RuntimeState,
        extra_headers: HeaderLookup | None = None,
        tracing: Tracing | None = None,
        record: Recorder | None = None,
    ) -> None:
        self.app = app
        self.tracing = tracing
        self.record = record
        self.renderer = renderer
        self.state = state
        self.extra_headers = extra_headers
        self._route_headers: dict[int, list[tuple[bytes, bytes]]] = {}
        self.log = LineWriter("request", "lms.access", service=service, version=version)
        self.errlog = get_logger("lms.error", service=service, version=version)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        request_id = None
        for name, value in scope["headers"]:
            if name == _HEADER:
                if valid_request_id(value):
                    request_id = value.decode()
                break
        if request_id is None:
            # 128 random bits: a correlation id, not a secret, so the Mersenne
            # Twister (0.3 us) rather than a getrandom syscall per request
            request_id = f"{_bits(128):032x}"
        opened = open_server_span(self.tracing, scope) if self.tracing is not None else None
        error: BaseException | None = None
        token = request_id_var.set(request_id)
        rid_header = (_HEADER, request_id.encode())
        status = 0
        started = time.perf_counter()

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [*message.get("headers", ()), rid_header]
                if self.extra_headers is not None:
                    headers.extend(self._headers_for(scope))
                message["headers"] = headers
            await send(message)

        state = self.state
        state.enter()
        try:
            if state.draining and not scope["path"].startswith("/health/"):
                status = await self._send_problem(
                    send,
                    scope,
                    rid_header,
                    errors.SERVICE_UNAVAILABLE,
                    "the service is shutting down; retry on another instance",
                    [(b"connection", b"close"), (b"retry-after", b"1")],
                )
            else:
                await self.app(scope, receive, send_wrapper)
        except Exception as exc:
            self.errlog.exception(
                "unhandled exception",
                method=scope["method"],
                route=route_template(scope),
            )
            error = exc
            if status:
                raise  # the response has started: all we can do is abort it
            status = await self._send_problem(
                send,
                scope,
                rid_header,
                errors.INTERNAL_ERROR,
                "an unexpected error occurred; quote the request id when reporting it",
            )
        except BaseException as exc:  # cancelled: the span says so, then it goes on
            error = exc
            raise
        finally:
            state.leave()
            self._finished(scope, status, time.perf_counter() - started)
            request_id_var.reset(token)
            if opened is not None:
                close_server_span(opened, scope, status, error)

    def _finished(self, scope: Scope, status: int, seconds: float) -> None:
        """The access line and the metrics of a finished request (its id and span still set)."""
        route = route_template(scope)
        if route not in _NOT_LOGGED or status >= 400:
            self.log(
                method=scope["method"],
                route=route,
                status=status,
                duration_ms=round(seconds * 1000, 3),
            )
        if self.record is not None:
            self.record(scope, route, status, seconds)

    def _headers_for(self, scope: Scope) -> list[tuple[bytes, bytes]]:
        route = scope.get("route")
        if route is None or self.extra_headers is None:
            return []
        key = id(route)
        cached = self._route_headers.get(key)
        if cached is None:
            cached = self._route_headers[key] = self.extra_headers(route)
        return cached

    async def _send_problem(
        self,
        send: Send,
        scope: Scope,
        rid_header: tuple[bytes, bytes],
        code: errors.ErrorCode,
        detail: str,
        headers: list[tuple[bytes, bytes]] | None = None,
    ) -> int:
        status, raw_headers, body = self.renderer.raw(
            code, detail=detail, instance=scope.get("path"), headers=[rid_header, *(headers or [])]
        )
        await send({"type": "http.response.start", "status": status, "headers": raw_headers})
        await send({"type": "http.response.body", "body": body})
        return status
