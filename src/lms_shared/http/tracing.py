"""The server span of each request: W3C Trace Context in, one SERVER span, names by route.

Opened by the outermost layer (after forwarding headers are settled), so
the access log line, the problem handlers and every span the route opens
are inside it: a service's :class:`~lms_shared.http.request.RequestMiddleware`
opens it itself (:func:`open_server_span`, :func:`close_server_span`: one
layer less per request), :class:`TracingMiddleware` does it for other apps.
Incoming ``traceparent``/``tracestate`` (or B3) continue the caller's
trace; invalid ones start a new trace, as the W3C text says
(:mod:`lms_shared.observability._tracecontext`). The span is named
``METHOD /route/{template}`` once routing is known (never the raw path:
bounded cardinality), with the OpenTelemetry HTTP semantic-convention
attributes; a 5xx sets its status to error.
"""

from __future__ import annotations

from contextvars import Token

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context.context import Context
from opentelemetry.trace import Span, Status, StatusCode

from lms_shared.http.routes import route_template
from lms_shared.observability._tracing import Tracing, reset_current_tracing, set_current_tracing
from lms_shared.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["ServerSpanScope", "TracingMiddleware", "close_server_span", "open_server_span"]

_READ = frozenset(
    {
        b"traceparent",
        b"tracestate",
        b"baggage",
        b"b3",
        b"x-b3-traceid",
        b"x-b3-spanid",
        b"x-b3-sampled",
        b"x-b3-flags",
    }
)
_MAX_VALUES = 8  # a header repeated more often is not read further (bounded)
_EMPTY = otel_context.Context()


ServerSpanScope = tuple[Span, "Token[Context]", "Token[Tracing | None]"]
"""A request's open server span and the two context tokens to restore."""


def open_server_span(tracing: Tracing, scope: Scope) -> ServerSpanScope:
    """Start the request's SERVER span and make it (and ``tracing``) current."""
    carrier: dict[str, list[str]] = {}
    for name, value in scope["headers"]:
        if name in _READ:
            values = carrier.setdefault(name.decode(), [])
            if len(values) < _MAX_VALUES:
                values.append(value.decode("latin-1"))
    parent: Context = tracing.propagator.extract(carrier) if carrier else _EMPTY
    method = scope["method"]
    span = tracing.start_server_span(
        method,
        parent,
        {
            "http.request.method": method,
            "url.path": scope["path"],
            "url.scheme": scope.get("scheme", "http"),
        },
    )
    token = otel_context.attach(trace.set_span_in_context(span, parent))
    return span, token, set_current_tracing(tracing)


def close_server_span(
    opened: ServerSpanScope, scope: Scope, status: int, error: BaseException | None = None
) -> None:
    """Name the span by its route, record the status (and ``error``), end it, restore."""
    span, token, current = opened
    if not span.is_recording():  # not sampled: nothing to name or record
        reset_current_tracing(current)
        otel_context.detach(token)
        return
    if error is not None:
        span.record_exception(error)
        span.set_status(Status(StatusCode.ERROR, type(error).__name__))
    route = route_template(scope)
    if route is not None:
        span.update_name(f"{scope['method']} {route}")
        span.set_attribute("http.route", route)
    if status:
        span.set_attribute("http.response.status_code", status)
        if status >= 500:
            span.set_status(Status(StatusCode.ERROR))
    span.end()
    reset_current_tracing(current)
    otel_context.detach(token)


class TracingMiddleware:
    """Open a SERVER span around each HTTP request.

    Args:
        app: the wrapped ASGI app.
        tracing: the service's tracing.
    """

    def __init__(self, app: ASGIApp, *, tracing: Tracing) -> None:
        self.app = app
        self.tracing = tracing
        self.tracer = tracing.tracer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        opened = open_server_span(self.tracing, scope)
        status = 0
        error: BaseException | None = None

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        except BaseException as exc:
            error = exc
            raise
        finally:
            close_server_span(opened, scope, status, error)
