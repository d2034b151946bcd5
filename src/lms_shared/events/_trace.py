"""The trace context events carry: producer and consumer spans of the bus.

The bus stamps every event it publishes with the W3C ``traceparent`` and
``tracestate`` of the code that published it (the CloudEvents distributed
tracing extension). With tracing set up (a service's
:class:`~lms_shared.observability.Tracing`), each publish runs in a
``PRODUCER`` span, ``publish <type>``, whose context the events carry
(through the outbox too: the context is stamped when the event is written,
in the transaction), and each handling in a ``CONSUMER`` span,
``process <type>``, a child of the producer's: so a trace runs from an HTTP
request through the events it caused to the handlers and what they call
and publish in turn. Span names and attributes follow OpenTelemetry's
messaging semantic conventions.

Without tracing the same stamping holds with plain contexts: a handler's
events continue the handled event's trace (:func:`child_context`), and an
event published outside any trace starts a new, unsampled one.

:func:`current_trace_context` is the hook: the context set with
:func:`use_trace_context`, else the active OpenTelemetry span's.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from contextvars import ContextVar, Token
from dataclasses import dataclass
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import SpanKind

from lms_shared.observability import Tracing, current_tracing

__all__ = [
    "TraceContext",
    "child_context",
    "consumer_span",
    "current_trace_context",
    "new_trace_context",
    "producer_span",
    "trace_id",
    "use_trace_context",
]

_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-[0-9a-f]{16}-([0-9a-f]{2})")


@dataclass(frozen=True, slots=True)
class TraceContext:
    """A W3C Trace Context: the ``traceparent`` header and its ``tracestate``."""

    traceparent: str
    tracestate: str | None = None


class _Child:
    """The child context of an event's, made when first asked for (most handlers never ask).

    Every task that sees it gets the same one (the span id is made once).
    """

    __slots__ = ("_context", "_made", "traceparent", "tracestate")

    def __init__(self, traceparent: str | None, tracestate: str | None) -> None:
        self.traceparent = traceparent
        self.tracestate = tracestate
        self._made = False
        self._context: TraceContext | None = None

    def context(self) -> TraceContext | None:
        if not self._made:
            self._context = child_context(self.traceparent, self.tracestate)
            self._made = True
        return self._context


_current: ContextVar[TraceContext | _Child | None] = ContextVar("lms_trace_context", default=None)


def current_trace_context() -> TraceContext | None:
    """The trace context of the code running now, or ``None`` outside any trace.

    The hook the bus calls on every publish. It returns what
    :func:`use_trace_context` set in this task (the bus sets a child of
    the handled event's while a handler runs without tracing), else the
    active OpenTelemetry span's context (a request's, a producer's, a
    consumer's).
    """
    found = _current.get()
    if isinstance(found, _Child):
        found = found.context()
    if found is not None:
        return found
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    header = f"00-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags):02x}"
    state = context.trace_state.to_header() if context.trace_state else None
    return TraceContext(header, state or None)


@contextmanager
def use_trace_context(context: TraceContext | None) -> Iterator[None]:
    """Make ``context`` current for the block (``None`` clears it)."""
    token = _current.set(context)
    try:
        yield
    finally:
        _current.reset(token)


def trace_id(traceparent: str | None) -> str | None:
    """The 32-hex-digit trace id of a ``traceparent``, or ``None`` when absent or malformed."""
    if traceparent is None:
        return None
    match = _TRACEPARENT.fullmatch(traceparent.strip())
    return match.group(2) if match else None


def new_trace_context() -> TraceContext:
    """A new root: a random trace id and span id, not sampled (flags ``00``).

    The bus starts one for an event published outside any trace, so every
    event (and its dead letter) still carries a trace id to search logs by.
    """
    return TraceContext(f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-00")


def child_context(traceparent: str | None, tracestate: str | None = None) -> TraceContext | None:
    """The context of work caused by an event: its trace id, a new span id.

    ``None`` when ``traceparent`` is absent or malformed (the handler then
    runs outside any trace, and what it publishes starts a new one).
    """
    if traceparent is None:
        return None
    match = _TRACEPARENT.fullmatch(traceparent.strip())
    if match is None:
        return None
    return TraceContext(f"00-{match.group(2)}-{secrets.token_hex(8)}-{match.group(3)}", tracestate)


_SYSTEMS = {"nats": "nats", "rabbitmq": "rabbitmq", "redis": "redis", "log": "lms-log"}


def _system(transport: str) -> str:
    return _SYSTEMS.get(transport.split(":", maxsplit=1)[0], transport)


@contextmanager
def producer_span(tracing: Tracing | None, transport: str, types: Sequence[str]) -> Iterator[None]:
    """A ``PRODUCER`` span around one publish (a no-op without tracing).

    Its context becomes current, so the events stamped inside the block
    carry it as their ``traceparent``.
    """
    tracing = tracing or current_tracing()
    if tracing is None:
        yield
        return
    names = sorted(set(types))
    destination = names[0] if len(names) == 1 else "batch"
    attributes: dict[str, Any] = {
        "messaging.system": _system(transport),
        "messaging.operation.type": "send",
        "messaging.operation.name": "publish",
        "messaging.destination.name": destination,
    }
    if len(types) > 1:
        attributes["messaging.batch.message_count"] = len(types)
    with (
        tracing.activate(),
        tracing.tracer.start_as_current_span(
            f"publish {destination}", kind=SpanKind.PRODUCER, attributes=attributes
        ),
    ):
        yield


def consumer_span(
    tracing: Tracing | None,
    transport: str,
    *,
    event_type: str,
    event_id: str,
    group: str,
    attempt: int,
    traceparent: str | None,
    tracestate: str | None,
) -> AbstractContextManager[trace.Span | None]:
    """The context a handler runs in: a ``CONSUMER`` span, child of the event's producer.

    Without tracing, a plain child context of the event's (what the
    handler publishes continues the trace; its span id is made when first
    asked for) and no span: a context variable set and reset, nothing
    more. Entering yields the span, or ``None``. An exception leaving the
    block marks the span as failed and is re-raised.
    """
    tracing = tracing or current_tracing()
    if tracing is None:
        return _Untraced(traceparent, tracestate)
    return _consumer_span(
        tracing,
        transport,
        event_type=event_type,
        event_id=event_id,
        group=group,
        attempt=attempt,
        traceparent=traceparent,
        tracestate=tracestate,
    )


class _Untraced:
    """:func:`consumer_span` without tracing: the event's child context, current in the block."""

    __slots__ = ("_child", "_token")

    def __init__(self, traceparent: str | None, tracestate: str | None) -> None:
        self._child = _Child(traceparent, tracestate)
        self._token: Token[TraceContext | _Child | None] | None = None

    def __enter__(self) -> None:
        self._token = _current.set(self._child)

    def __exit__(self, *exc_info: object) -> None:
        if self._token is not None:
            _current.reset(self._token)
            self._token = None


@contextmanager
def _consumer_span(
    tracing: Tracing,
    transport: str,
    *,
    event_type: str,
    event_id: str,
    group: str,
    attempt: int,
    traceparent: str | None,
    tracestate: str | None,
) -> Iterator[trace.Span]:
    carrier = {"traceparent": traceparent} if traceparent else {}
    if traceparent and tracestate:
        carrier["tracestate"] = tracestate
    parent = tracing.extract(carrier)
    attributes: dict[str, Any] = {
        "messaging.system": _system(transport),
        "messaging.operation.type": "process",
        "messaging.operation.name": "process",
        "messaging.destination.name": event_type,
        "messaging.consumer.group.name": group,
        "messaging.message.id": event_id,
        "messaging.message.delivery_count": attempt,
    }
    with (
        use_trace_context(None),
        tracing.activate(),
        tracing.tracer.start_as_current_span(
            f"process {event_type}",
            context=parent,
            kind=SpanKind.CONSUMER,
            attributes=attributes,
            record_exception=True,
            set_status_on_exception=True,
        ) as current,
    ):
        yield current
