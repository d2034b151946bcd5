"""Database spans: one CLIENT span per statement, a child of the request's or handler's span.

Written with SQLAlchemy's cursor events rather than with
``opentelemetry-instrumentation-sqlalchemy``: that instrumentor is a
process-wide singleton bound to one tracer provider, while every service
here has its own provider (a test process, or the demo's in-process mode,
runs several). The spans follow OpenTelemetry's database semantic
conventions: named ``<operation> <namespace>`` (``SELECT lms``), with
``db.system.name``, ``db.namespace``, ``db.operation.name``,
``db.query.text`` (the statement as SQLAlchemy sends it: parameters are
placeholders, never values; at most 2,000 characters), ``server.address``
and ``server.port``. A failed statement records its error type.
"""

from __future__ import annotations

from typing import Any

from opentelemetry.trace import SpanKind, Status, StatusCode, TracerProvider
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncEngine

__all__ = ["trace_engine"]

_KEY = "_lms_span"
_MAX_QUERY = 2000


def _operation(statement: str) -> str:
    word = statement.lstrip().split(None, 1)
    return word[0].upper()[:20] if word else "SQL"


def trace_engine(engine: AsyncEngine, provider: TracerProvider) -> None:
    """Trace every statement ``engine`` runs with ``provider``'s tracer."""
    tracer = provider.get_tracer("lms_shared.db")
    sync: Engine = engine.sync_engine
    url = sync.url
    system = "postgresql" if sync.dialect.name == "postgresql" else sync.dialect.name
    namespace = url.database or ""
    base: dict[str, Any] = {"db.system.name": system}
    if namespace:
        base["db.namespace"] = namespace[-200:]
    if url.host:
        base["server.address"] = url.host
    if url.port:
        base["server.port"] = url.port
    label = (namespace.rsplit("/", 1)[-1] or system)[:60]

    @event.listens_for(sync, "before_cursor_execute")
    def _start(
        conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool
    ) -> None:
        operation = _operation(statement)
        span = tracer.start_span(
            f"{operation} {label}",
            kind=SpanKind.CLIENT,
            attributes={
                **base,
                "db.operation.name": operation,
                "db.query.text": statement[:_MAX_QUERY],
            },
        )
        if context is not None:
            setattr(context, _KEY, span)

    @event.listens_for(sync, "after_cursor_execute")
    def _end(
        conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool
    ) -> None:
        span = getattr(context, _KEY, None)
        if span is not None:
            span.end()

    @event.listens_for(sync, "handle_error")
    def _failed(exception_context: Any) -> None:
        context = exception_context.execution_context
        span = getattr(context, _KEY, None) if context is not None else None
        if span is not None:
            error = type(exception_context.original_exception).__name__
            span.set_attribute("error.type", error)
            span.set_status(Status(StatusCode.ERROR, error))
            span.end()
