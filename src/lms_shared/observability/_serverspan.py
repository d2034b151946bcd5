"""The SERVER span of a request, recorded without the SDK's per-span machinery.

Written here because the server span is on the path of every request and
the SDK's ``Tracer.start_span`` costs about 25 µs for it on the machines we
measure (the sampler chain, ``BoundedAttributes`` with its lock, span
limits, the processor chain, ``ReadableSpan`` copies), a third of what
the whole chassis may add to a tiny route. :class:`ServerSpan` implements
the OpenTelemetry API ``Span`` (so ``trace.get_current_span()`` in a route,
child spans, log lines and propagation see it as any other span) with plain
slots and a dict; it becomes an SDK :class:`ReadableSpan` only when it is
exported, on the exporter's thread (or at once for processors other than
the service's own batch processor, such as a test's in-memory recorder).

Sampling is the provider's, done by hand with the same rule:
``ParentBased(TraceIdRatioBased(ratio))``: a parent's sampled flag decides,
a new trace is sampled when the low 64 bits of its id fall under the
ratio's bound. An unsampled request gets a ``NonRecordingSpan`` that still
carries its ids (logs and outgoing calls propagate them).
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType, TracebackType
from typing import Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Span, SpanContext, SpanKind, Status, StatusCode
from opentelemetry.util.types import Attributes, AttributeValue

__all__ = ["MAX_ATTRIBUTES", "MAX_EVENTS", "ServerSpan", "TakesServerSpans", "readable_spans"]

MAX_ATTRIBUTES = 128
"""Attributes a span keeps at most (the SDK's default limit); later ones are dropped."""
MAX_EVENTS = 128
"""Events a span keeps at most (the SDK's default limit)."""

_UNSET = Status(StatusCode.UNSET)


class ServerSpan(Span):
    """A recording SERVER span: the API ``Span``, exported as an SDK ``ReadableSpan``.

    Args:
        name: the span's name.
        context: its own ids and flags.
        parent: the caller's span context, or ``None`` for a new trace.
        attributes: its first attributes.
        finish: called once with the span when it ends (queues it for export).
        resource: the provider's resource (for the export).
        scope: the instrumentation scope (for the export).
    """

    __slots__ = (
        "_attributes",
        "_context",
        "_end",
        "_events",
        "_finish",
        "_name",
        "_parent",
        "_resource",
        "_scope",
        "_start",
        "_status",
    )

    def __init__(
        self,
        name: str,
        context: SpanContext,
        parent: SpanContext | None,
        attributes: dict[str, AttributeValue],
        *,
        finish: Callable[[ServerSpan], None],
        resource: Resource,
        scope: InstrumentationScope,
    ) -> None:
        self._name = name
        self._context = context
        self._parent = parent
        self._attributes = attributes
        self._events: list[Event] = []
        self._status = _UNSET
        self._start = time.time_ns()
        self._end: int | None = None
        self._finish = finish
        self._resource = resource
        self._scope = scope

    @property
    def name(self) -> str:
        """The span's current name."""
        return self._name

    @property
    def attributes(self) -> Mapping[str, AttributeValue]:
        """The span's attributes (read-only view)."""
        return MappingProxyType(self._attributes)

    @property
    def ended(self) -> bool:
        """Whether :meth:`end` was called."""
        return self._end is not None

    def get_span_context(self) -> SpanContext:
        """The span's ids, flags and trace state."""
        return self._context

    def is_recording(self) -> bool:
        """Whether the span still takes attributes and events (until it ends)."""
        return self._end is None

    def set_attribute(self, key: str, value: AttributeValue) -> None:
        """Set one attribute (ignored after the end or beyond :data:`MAX_ATTRIBUTES`)."""
        attributes = self._attributes
        if self._end is None and (key in attributes or len(attributes) < MAX_ATTRIBUTES):
            attributes[key] = value

    def set_attributes(self, attributes: Mapping[str, AttributeValue]) -> None:
        """Set several attributes."""
        for key, value in attributes.items():
            self.set_attribute(key, value)

    def add_event(
        self, name: str, attributes: Attributes = None, timestamp: int | None = None
    ) -> None:
        """Add an event (ignored after the end or beyond :data:`MAX_EVENTS`)."""
        if self._end is None and len(self._events) < MAX_EVENTS:
            self._events.append(Event(name, attributes, timestamp or time.time_ns()))

    def add_link(self, context: SpanContext, attributes: Attributes = None) -> None:
        """Links are not kept on server spans (a request has one parent)."""

    def update_name(self, name: str) -> None:
        """Rename the span (the route template, once routing is known)."""
        if self._end is None:
            self._name = name

    def set_status(self, status: Status | StatusCode, description: str | None = None) -> None:
        """Set the status; ``OK`` is final, as the API says."""
        if self._end is not None or self._status.status_code is StatusCode.OK:
            return
        if isinstance(status, StatusCode):
            status = Status(status, description)
        self._status = status

    def record_exception(
        self,
        exception: BaseException,
        attributes: Attributes = None,
        timestamp: int | None = None,
        escaped: bool = False,
    ) -> None:
        """An ``exception`` event with the semantic-convention attributes."""
        stack = "".join(
            traceback.format_exception(type(exception), exception, exception.__traceback__)
        )
        details: dict[str, AttributeValue] = {
            "exception.type": type(exception).__qualname__,
            "exception.message": str(exception),
            "exception.stacktrace": stack,
            "exception.escaped": str(escaped),
        }
        if attributes:
            details.update(attributes)
        self.add_event("exception", details, timestamp)

    def end(self, end_time: int | None = None) -> None:
        """Finish the span (once) and hand it on for export."""
        if self._end is not None:
            return
        self._end = end_time or time.time_ns()
        self._finish(self)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> None:
        if exc_val is not None and self.is_recording():
            self.record_exception(exc_val, escaped=True)
            self.set_status(Status(StatusCode.ERROR, f"{type(exc_val).__name__}: {exc_val}"))
        self.end()

    def attributes_dict(self) -> dict[str, AttributeValue]:
        """The attributes themselves, for exporters (the span has ended: no more writes)."""
        return self._attributes

    def fields(self) -> tuple[SpanContext, SpanContext | None, str, int, int, Status, Resource]:
        """``(context, parent, name, start_ns, end_ns, status, resource)`` of the ended span."""
        return (
            self._context,
            self._parent,
            self._name,
            self._start,
            self._end or self._start,
            self._status,
            self._resource,
        )

    def readable(self) -> ReadableSpan:
        """The SDK's view of the finished span, as exporters take it."""
        return ReadableSpan(
            name=self._name,
            context=self._context,
            parent=self._parent,
            resource=self._resource,
            attributes=self._attributes,
            events=tuple(self._events),
            links=(),
            kind=SpanKind.SERVER,
            status=self._status,
            start_time=self._start,
            end_time=self._end,
            instrumentation_scope=self._scope,
        )


def readable_spans(spans: Sequence[Any]) -> list[ReadableSpan]:
    """Queued spans as exporters take them (server spans converted)."""
    return [s.readable() if isinstance(s, ServerSpan) else s for s in spans]


class TakesServerSpans:
    """Marks an exporter that reads :class:`ServerSpan` objects itself (no SDK copy first)."""
