"""Tracing: the OpenTelemetry SDK set up from settings, one provider per service.

:class:`Tracing` is the service's component. Its tracer provider carries
the service's name, version and instance as resource attributes, samples
with ``ParentBased(TraceIdRatioBased(LMS_TRACE_SAMPLE_RATIO))`` and exports
through a :class:`~._processor.BoundedBatchProcessor`: OTLP/HTTP to
``LMS_TELEMETRY_URL`` when it is set, the embedded span store of the state
folder otherwise. A collector that is down costs dropped spans (counted),
never a blocked or failed request.

The provider is the service's own, not OpenTelemetry's process-global one:
a test process builds many services. Code that is not handed the service
(``span()``, ``@traced``, the event bus, the client) finds the current
one through :func:`current_tracing`, which the server middleware and the
bus set for the work they run, with the last started service as the
default of its process.

:class:`LmsPropagator` reads and writes W3C ``traceparent``/``tracestate``
(:mod:`._tracecontext`), W3C ``baggage`` (OpenTelemetry's propagator,
which bounds it) and, beside them, B3.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import os
import socket
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from contextvars import ContextVar, Token
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ParamSpec, TypeVar, overload

from opentelemetry import baggage, trace
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.context import Context
from opentelemetry.propagators.textmap import (
    CarrierT,
    Getter,
    Setter,
    TextMapPropagator,
    default_getter,
    default_setter,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import NonRecordingSpan, Span, SpanContext, SpanKind, TraceFlags
from opentelemetry.trace import TraceState as OtelTraceState
from opentelemetry.trace.span import DEFAULT_TRACE_STATE as _NO_STATE

from lms_shared.caching import BoundedCache
from lms_shared.observability._processor import BoundedBatchProcessor
from lms_shared.observability._serverspan import ServerSpan
from lms_shared.observability._spanstore import SpanStore, SpanStoreExporter
from lms_shared.observability._tracecontext import (
    FLAG_RANDOM,
    FLAG_SAMPLED,
    TraceParent,
    format_b3,
    format_tracestate,
    parse_b3,
    parse_traceparent,
)

__all__ = [
    "LmsPropagator",
    "RandomTraces",
    "Tracing",
    "TracingConfig",
    "current_span_ids",
    "current_trace_id",
    "current_tracing",
    "inject_trace_context",
    "reset_current_tracing",
    "set_current_tracing",
    "span",
    "traced",
    "use_tracing",
]

P = ParamSpec("P")
R = TypeVar("R")

_CURRENT: ContextVar[Tracing | None] = ContextVar("lms_tracing", default=None)
_DEFAULT: list[Tracing] = []
_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
_NOT_SAMPLED = TraceFlags(TraceFlags.DEFAULT)
_ID_LIMIT = TraceIdRatioBased.TRACE_ID_LIMIT
_W3C_FIELDS = ("traceparent", "tracestate")
_B3_FIELDS = ("b3", "x-b3-traceid", "x-b3-spanid", "x-b3-sampled", "x-b3-flags")


@dataclass(frozen=True, slots=True)
class TracingConfig:
    """What tracing needs of the settings.

    Attributes:
        service: ``service.name``.
        version: ``service.version``.
        instance: ``service.instance.id`` (host and process by default).
        environment: ``deployment.environment.name``.
        otlp_url: the collector's base URL (``/v1/traces`` is added); ``None``
            stores spans in ``state_dir``.
        state_dir: the state folder of the embedded store.
        sample_ratio: the share of new traces recorded (parents decide for theirs).
        max_queue: spans waiting for export at most (beyond: dropped, counted).
        b3: also write B3 headers on outgoing calls.
        export_interval: seconds between exports (a full batch goes at once).
    """

    service: str
    version: str
    instance: str = ""
    environment: str = "development"
    otlp_url: str | None = None
    state_dir: Path = Path(".lms")
    sample_ratio: float = 1.0
    max_queue: int = 2048
    b3: bool = True
    export_interval: float = 1.0

    @classmethod
    def from_settings(cls, service: str, version: str, settings: Any) -> TracingConfig:
        """The tracing slice of the service's settings."""
        return cls(
            service=service,
            version=version,
            instance=f"{socket.gethostname()}:{os.getpid()}",
            environment=str(settings.env),
            otlp_url=settings.telemetry_url,
            state_dir=Path(settings.state_dir),
            sample_ratio=float(settings.trace_sample_ratio),
            max_queue=int(settings.trace_queue_size),
            b3=bool(settings.trace_b3),
        )


def _first(getter: Getter[CarrierT], carrier: CarrierT, name: str) -> str | None:
    values = getter.get(carrier, name)
    return values[0] if values else None


class LmsPropagator(TextMapPropagator):
    """W3C Trace Context (level 2) and baggage, with B3 read and written beside them.

    Args:
        b3: write B3 headers too (they are always read when no ``traceparent`` came).
    """

    def __init__(self, *, b3: bool = True, random: RandomTraces | None = None) -> None:
        self.b3 = b3
        self.random = random or RandomTraces()
        self._baggage = W3CBaggagePropagator()

    def extract(
        self,
        carrier: CarrierT,
        context: Context | None = None,
        getter: Getter[CarrierT] = default_getter,
    ) -> Context:
        """The context of ``carrier``'s headers (a new trace when they carry none valid)."""
        context = self._baggage.extract(carrier, context, getter)
        parents = list(getter.get(carrier, "traceparent") or ())
        if parents:
            found = parse_traceparent(parents, list(getter.get(carrier, "tracestate") or ()))
        else:
            b3 = {name: value for name in _B3_FIELDS if (value := _first(getter, carrier, name))}
            found = parse_b3(b3) if b3 else None
        if found is None:
            return context
        if found.random:
            self.random.remember(int(found.trace_id, 16))
        remote = SpanContext(
            trace_id=int(found.trace_id, 16),
            span_id=int(found.parent_id, 16),
            is_remote=True,
            trace_flags=TraceFlags(found.flags),
            trace_state=OtelTraceState(list(found.tracestate)),
        )
        return trace.set_span_in_context(NonRecordingSpan(remote), context)

    def inject(
        self,
        carrier: CarrierT,
        context: Context | None = None,
        setter: Setter[CarrierT] = default_setter,
    ) -> None:
        """Write the current span's context (and baggage) into ``carrier``."""
        span_context = trace.get_current_span(context).get_span_context()
        if span_context.is_valid:
            flags = int(span_context.trace_flags) & FLAG_SAMPLED
            if self.random.is_random(span_context.trace_id):
                flags |= FLAG_RANDOM
            parent = TraceParent(
                f"{span_context.trace_id:032x}",
                f"{span_context.span_id:016x}",
                flags,
                tuple(span_context.trace_state.items()),
            )
            setter.set(carrier, "traceparent", parent.header())
            if parent.tracestate:
                setter.set(carrier, "tracestate", format_tracestate(parent.tracestate))
            if self.b3:
                setter.set(carrier, "b3", format_b3(parent))
        self._baggage.inject(carrier, context, setter)

    @property
    def fields(self) -> set[str]:
        """The headers it reads and writes."""
        return {*_W3C_FIELDS, *_B3_FIELDS, *self._baggage.fields}


class RandomTraces(RandomIdGenerator):
    """The SDK's random ids, remembering which trace ids are known to be random.

    W3C level 2: the ``random`` flag says the trace id is random and is
    propagated unchanged for that trace. The SDK keeps only the sampled bit
    in a span's flags, so the ids this generator made and the incoming
    parents that carried the flag are remembered (bounded: the 65,536 most
    recent traces; an older long-running trace is sent without it, which is
    always allowed).
    """

    def __init__(self, maxsize: int = 65_536) -> None:
        self._known: BoundedCache[int, bool] = BoundedCache(maxsize)

    def generate_trace_id(self) -> int:
        """A random trace id, remembered as random."""
        trace_id = super().generate_trace_id()
        self._known.set(trace_id, True)
        return trace_id

    def remember(self, trace_id: int) -> None:
        """An incoming parent said ``trace_id`` is random."""
        self._known.set(trace_id, True)

    def is_random(self, trace_id: int) -> bool:
        """Whether ``trace_id`` is known to be random."""
        return self._known.get(trace_id) is not None


_PLAIN = LmsPropagator(b3=False)


class Tracing:
    """The service's tracing: a tracer, its exporter and the propagator.

    Args:
        config: what to trace as, and where spans go.
        exporter: overrides where spans go (tests: an in-memory exporter).
        processor: overrides the span processor (tests: synchronous export).
    """

    def __init__(
        self,
        config: TracingConfig,
        *,
        exporter: SpanExporter | None = None,
        processor: SpanProcessor | None = None,
    ) -> None:
        self.name = "tracing"
        self.config = config
        resource = Resource.create(
            {
                "service.name": config.service,
                "service.version": config.version,
                "service.instance.id": config.instance,
                "deployment.environment.name": config.environment,
            }
        )
        sampler = ParentBased(TraceIdRatioBased(config.sample_ratio))
        self.ids = RandomTraces()
        self.provider = TracerProvider(resource=resource, sampler=sampler, id_generator=self.ids)
        self.store: SpanStore | None = None
        if exporter is None and processor is None:
            exporter = self._default_exporter()
        if processor is None:
            processor = BoundedBatchProcessor(
                exporter if exporter is not None else self._default_exporter(),
                max_queue=config.max_queue,
            )
        self.processor = processor
        self.provider.add_span_processor(self.processor)
        self.tracer = self.provider.get_tracer("lms_shared")
        self.propagator = LmsPropagator(b3=config.b3, random=self.ids)
        # the SERVER span's own path (_serverspan): the same sampling rule, by hand
        self._bound = TraceIdRatioBased.get_bound_for_rate(config.sample_ratio)
        self._scope = InstrumentationScope("lms_shared")
        self._processors = self.provider._active_span_processor  # every added processor
        self._task: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None

    def start_server_span(self, name: str, parent: Context, attributes: dict[str, Any]) -> Span:
        """A SERVER span for one request, child of ``parent`` (the caller's context).

        Sampled as the provider samples (``ParentBased(TraceIdRatioBased)``);
        recorded as a :class:`~._serverspan.ServerSpan`, or a
        ``NonRecordingSpan`` carrying new ids when not sampled.
        """
        caller = trace.get_current_span(parent).get_span_context()
        if caller.is_valid:
            trace_id = caller.trace_id
            sampled = caller.trace_flags.sampled
            state = caller.trace_state
            remote: SpanContext | None = caller
        else:
            trace_id = self.ids.generate_trace_id()
            sampled = trace_id & _ID_LIMIT < self._bound
            state = _NO_STATE
            remote = None
        context = SpanContext(
            trace_id,
            self.ids.generate_span_id(),
            is_remote=False,
            trace_flags=_SAMPLED if sampled else _NOT_SAMPLED,
            trace_state=state,
        )
        if not sampled:
            return NonRecordingSpan(context)
        return ServerSpan(
            name,
            context,
            remote,
            attributes,
            finish=self._finish_server_span,
            resource=self.provider.resource,
            scope=self._scope,
        )

    def _finish_server_span(self, span: ServerSpan) -> None:
        processors = self._processors._span_processors
        if len(processors) == 1 and processors[0] is self.processor:
            # the batch processor converts it on the exporting thread
            self.processor.on_end(span)  # type: ignore[arg-type]
        else:
            self._processors.on_end(span.readable())

    def _default_exporter(self) -> SpanExporter:
        if self.config.otlp_url:
            # the OTLP exporter pulls in protobuf: imported only when a collector is set
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # noqa: PLC0415
                OTLPSpanExporter,
            )

            return OTLPSpanExporter(
                endpoint=self.config.otlp_url.rstrip("/") + "/v1/traces", timeout=5
            )
        self.store = SpanStore.in_state_dir(self.config.state_dir)
        return SpanStoreExporter(self.store)

    @property
    def dropped(self) -> int:
        """Spans dropped because the export queue was full."""
        return int(getattr(self.processor, "dropped", 0))

    def extract(self, headers: Mapping[str, str] | Mapping[str, list[str]]) -> Context:
        """The context of incoming headers (lower-case names)."""
        return self.propagator.extract(headers)

    def inject(self, headers: MutableMapping[str, str], context: Context | None = None) -> None:
        """Write the current (or given) context into outgoing headers."""
        self.propagator.inject(headers, context)

    @contextmanager
    def activate(self) -> Iterator[Tracing]:
        """Make this the current tracing within the block (the middleware does)."""
        token = _CURRENT.set(self)
        try:
            yield self
        finally:
            _CURRENT.reset(token)

    async def start(self) -> None:
        """Start exporting (a task of the loop) and become the process's default tracing."""
        _DEFAULT.append(self)
        processor = self.processor
        if isinstance(processor, BoundedBatchProcessor) and self._task is None:
            loop = asyncio.get_running_loop()
            self._wake = asyncio.Event()
            wake = self._wake

            def wake_up() -> None:
                loop.call_soon_threadsafe(wake.set)

            processor.wake = wake_up
            self._task = asyncio.create_task(self._export_loop(processor, wake))

    async def _export_loop(self, processor: BoundedBatchProcessor, wake: asyncio.Event) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), self.config.export_interval)
            wake.clear()
            if len(processor):
                await asyncio.to_thread(processor.export_pending)

    async def stop(self) -> None:
        """Export what is left and stop; the export runs off the loop."""
        if self in _DEFAULT:
            _DEFAULT.remove(self)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await asyncio.to_thread(self.provider.shutdown)

    async def ping(self) -> str:
        """Readiness detail: where spans go."""
        return "otlp" if self.config.otlp_url else "embedded store"


def set_current_tracing(tracing: Tracing) -> Token[Tracing | None]:
    """Make ``tracing`` current until :func:`reset_current_tracing` (the middleware's fast path)."""
    return _CURRENT.set(tracing)


def reset_current_tracing(token: Token[Tracing | None]) -> None:
    """Undo :func:`set_current_tracing`."""
    _CURRENT.reset(token)


def current_tracing() -> Tracing | None:
    """The tracing of the work running now, else the last started service's."""
    found = _CURRENT.get()
    if found is not None:
        return found
    return _DEFAULT[-1] if _DEFAULT else None


@contextmanager
def use_tracing(tracing: Tracing) -> Iterator[Tracing]:
    """Make ``tracing`` current within the block."""
    with tracing.activate() as active:
        yield active


def inject_trace_context(headers: MutableMapping[str, str]) -> None:
    """Write the current span's ``traceparent``/``tracestate`` (B3, baggage) into ``headers``.

    Nothing is written outside a trace. The current tracing's propagator
    decides about B3 and knows which traces are random.
    """
    tracing = current_tracing()
    propagator = tracing.propagator if tracing is not None else _PLAIN
    propagator.inject(headers)


def current_trace_id() -> str | None:
    """The current span's trace id (32 hex digits), or ``None`` outside a trace."""
    context = trace.get_current_span().get_span_context()
    return f"{context.trace_id:032x}" if context.is_valid else None


def current_span_ids() -> tuple[str, str] | None:
    """``(trace_id, span_id)`` of the current span, or ``None`` outside a trace."""
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    return f"{context.trace_id:032x}", f"{context.span_id:016x}"


@contextmanager
def span(
    name: str,
    *,
    kind: SpanKind = SpanKind.INTERNAL,
    attributes: Mapping[str, Any] | None = None,
) -> Iterator[Span]:
    """A child span of the current one (a no-op span when no tracing is set up).

    An exception leaving the block is recorded on the span and re-raised.
    """
    tracing = current_tracing()
    if tracing is None:
        yield trace.INVALID_SPAN
        return
    with tracing.tracer.start_as_current_span(name, kind=kind, attributes=attributes) as current:
        yield current


@overload
def traced(function: Callable[P, R], /) -> Callable[P, R]: ...


@overload
def traced(
    *, name: str | None = None, attributes: Mapping[str, Any] | None = None
) -> Callable[[Callable[P, R]], Callable[P, R]]: ...


def traced(
    function: Callable[P, R] | None = None,
    /,
    *,
    name: str | None = None,
    attributes: Mapping[str, Any] | None = None,
) -> Callable[P, R] | Callable[[Callable[P, R]], Callable[P, R]]:
    """Run a function (sync or async) in a span named after it (``module.qualname``)."""

    def decorate(func: Callable[P, R]) -> Callable[P, R]:
        label = name or f"{func.__module__}.{func.__qualname__}"
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def run_async(*args: P.args, **kwargs: P.kwargs) -> Any:
                with span(label, attributes=attributes):
                    return await func(*args, **kwargs)

            return run_async  # type: ignore[return-value]

        @functools.wraps(func)
        def run(*args: P.args, **kwargs: P.kwargs) -> R:
            with span(label, attributes=attributes):
                return func(*args, **kwargs)

        return run

    if function is not None:
        return decorate(function)
    return decorate


def baggage_of(context: Context | None = None) -> dict[str, str]:
    """The W3C baggage of the current (or given) context."""
    return {k: str(v) for k, v in baggage.get_all(context).items()}
