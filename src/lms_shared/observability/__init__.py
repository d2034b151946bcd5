"""Observability: structured logging and OpenTelemetry tracing.

The logging configuration is the one process-wide global the library owns;
it is set in the service lifespan, never at import. Tracing is per service
(:class:`Tracing`, one tracer provider each); ``span()`` and ``@traced``
find the current one.
"""

from lms_shared.observability._logging import (
    LineWriter,
    configure_logging,
    configure_service_logging,
    get_logger,
    is_configured,
    log_shipper,
    reset_logging,
)
from lms_shared.observability._logship import LogShipper
from lms_shared.observability._logstore import LogStore, StoredLog
from lms_shared.observability._metrics import HTTP_BUCKETS, Metrics, MetricsConfig, slo_buckets
from lms_shared.observability._tracecontext import TraceParent
from lms_shared.observability._tracing import (
    Tracing,
    TracingConfig,
    current_span_ids,
    current_trace_id,
    current_tracing,
    inject_trace_context,
    span,
    traced,
)
from lms_shared.observability.context import current_request_id

__all__ = [
    "HTTP_BUCKETS",
    "LineWriter",
    "LogShipper",
    "LogStore",
    "Metrics",
    "MetricsConfig",
    "StoredLog",
    "TraceParent",
    "Tracing",
    "TracingConfig",
    "configure_logging",
    "configure_service_logging",
    "current_request_id",
    "current_span_ids",
    "current_trace_id",
    "current_tracing",
    "get_logger",
    "inject_trace_context",
    "is_configured",
    "log_shipper",
    "reset_logging",
    "slo_buckets",
    "span",
    "traced",
]
