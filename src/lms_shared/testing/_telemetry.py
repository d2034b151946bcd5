"""In-memory spans and metrics for tests: what a service traced and counted, as data.

``record_spans(service)`` adds a synchronous in-memory exporter to the
service's tracer provider (beside its own export), so every finished span
is readable at once, without a collector or the embedded store::

    spans = record_spans(service)
    async with service_client(service) as client:
        await client.get("/v1/courses/c1")
    [server] = spans.named("GET /v1/courses/{course_id}")
    assert server.attributes["http.response.status_code"] == 200

``read_metrics(service)`` reads the service's Prometheus registry in
process, by name and labels, without scraping ``/metrics``::

    metrics = read_metrics(service)
    assert metrics.value("http_server_request_duration_seconds_count", http_route="/v1/x") == 1

(Logs: :func:`~lms_shared.testing.capture_logs`.)
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from lms_shared.observability._metrics import Metrics
from lms_shared.observability._spanstore import SpanRecord, record_of
from lms_shared.observability._tracing import Tracing

if TYPE_CHECKING:
    from lms_shared.service import Service

__all__ = ["MetricReader", "RecordedSpans", "read_metrics", "record_spans"]


@dataclass
class RecordedSpans:
    """The finished spans of one or more tracings, oldest first."""

    exporter: InMemorySpanExporter

    @property
    def spans(self) -> list[SpanRecord]:
        """Every finished span."""
        return [record_of(s) for s in self.raw()]

    def raw(self) -> tuple[ReadableSpan, ...]:
        """The SDK's own span objects (events, links, resource)."""
        return tuple(self.exporter.get_finished_spans())

    def named(self, name: str) -> list[SpanRecord]:
        """The spans called ``name``."""
        return [s for s in self.spans if s.name == name]

    def trace(self, trace_id: str) -> list[SpanRecord]:
        """The spans of one trace."""
        return [s for s in self.spans if s.trace_id == trace_id]

    def children(self, parent: SpanRecord) -> list[SpanRecord]:
        """The spans whose parent is ``parent``."""
        return [s for s in self.spans if s.parent_id == parent.span_id]

    def tree(self, trace_id: str) -> list[str]:
        """The trace as indented ``service: name`` lines (a quick picture in a failure)."""
        spans = self.trace(trace_id)
        ids = {s.span_id for s in spans}

        def walk(node: SpanRecord, depth: int) -> Iterator[str]:
            yield "  " * depth + f"{node.service}: {node.name}"
            for child in spans:
                if child.parent_id == node.span_id:
                    yield from walk(child, depth + 1)

        roots = [s for s in spans if s.parent_id not in ids]
        return [line for root in roots for line in walk(root, 0)]

    def clear(self) -> None:
        """Forget what was recorded."""
        self.exporter.clear()


def record_spans(*targets: Service | Tracing, into: RecordedSpans | None = None) -> RecordedSpans:
    """Record every span the services (or tracings) finish from now on, in memory.

    Several services may share one recorder (``into=``), so a call from one
    to another is one trace in one place.
    """
    recorded = into or RecordedSpans(InMemorySpanExporter())
    for target in targets:
        tracing: Any = target if isinstance(target, Tracing) else target.tracing
        tracing.provider.add_span_processor(SimpleSpanProcessor(recorded.exporter))
    return recorded


@dataclass
class MetricReader:
    """A service's metrics, read in process (see :func:`read_metrics`)."""

    metrics: Metrics

    def value(self, name: str, **labels: str) -> float | None:
        """One sample's value (``None`` when the series does not exist).

        Label values are compared as strings, as Prometheus stores them
        (``http_response_status_code="200"``); pass every label of the series.
        """
        self.metrics.refresh()
        return self.metrics.registry.get_sample_value(name, labels)

    def samples(self, name: str) -> list[tuple[dict[str, str], float]]:
        """Every sample called ``name`` (a series each), with its labels."""
        self.metrics.refresh()
        return [
            (dict(sample.labels), sample.value)
            for family in self.metrics.registry.collect()
            for sample in family.samples
            if sample.name == name
        ]

    def total(self, name: str, **labels: str) -> float:
        """The sum of the samples called ``name`` whose labels include ``labels``."""
        return sum(
            value
            for found, value in self.samples(name)
            if all(found.get(k) == v for k, v in labels.items())
        )


def read_metrics(service: Service | Metrics) -> MetricReader:
    """A reader of the service's (or a :class:`Metrics`') Prometheus registry."""
    metrics: Any = service if isinstance(service, Metrics) else service.metrics
    return MetricReader(metrics)
