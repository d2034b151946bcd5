"""Log lines shipped off the caller's thread: to the embedded store or to an OTLP collector.

:class:`LogShipper` is a bounded queue and one background thread. Writing a
line costs the caller one ``deque.append``: never a wait, never an
exception. When the queue is full (a collector that is down, a locked
file) new lines are dropped and counted (:attr:`LogShipper.dropped`); the
line on standard output is written all the same. A thread, not an asyncio
task, because standard-library loggers write from any thread and before
the event loop runs. The thread starts with the first line, wakes when a
batch is full or every :attr:`~LogShipper.interval` seconds, and hands each
batch to a :class:`LogSink`:

* :class:`StoreSink`: the SQLite file of the state folder (:mod:`._logstore`);
* :class:`OtlpLogSink`: OTLP/HTTP ``/v1/logs`` through the OpenTelemetry
  SDK's log records and its OTLP exporter (bounded by its timeout).

Lines written by the shipper's own thread (the exporter's warnings about a
collector that is down) are printed but never shipped, so a failing export
cannot feed itself.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Mapping, Sequence
from contextlib import suppress
from typing import Any, Protocol

import orjson
from opentelemetry import trace
from opentelemetry._logs import LogRecord, SeverityNumber
from opentelemetry.sdk._logs import LoggerProvider, LogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from lms_shared.observability._logstore import LogEntry, LogStore

__all__ = ["LogShipper", "LogSink", "OtlpLogSink", "StoreSink"]

_SEVERITY = {
    "debug": SeverityNumber.DEBUG,
    "info": SeverityNumber.INFO,
    "warning": SeverityNumber.WARN,
    "warn": SeverityNumber.WARN,
    "error": SeverityNumber.ERROR,
    "exception": SeverityNumber.ERROR,
    "critical": SeverityNumber.FATAL,
    "fatal": SeverityNumber.FATAL,
}
# carried by the record itself (timestamp, severity, trace context, resource), not as attributes
_NOT_ATTRIBUTES = frozenset(
    {"event", "level", "timestamp", "trace_id", "span_id", "service", "version"}
)


class LogSink(Protocol):
    """Where a batch of lines goes; ``write`` runs on the shipper's thread."""

    name: str

    def write(self, batch: Sequence[LogEntry]) -> bool:
        """Deliver ``batch``; ``False`` (or an exception) counts it failed."""
        ...

    def close(self) -> None:
        """Release what the sink holds (files, connections)."""
        ...


class StoreSink:
    """Batches into the embedded :class:`~._logstore.LogStore`."""

    name = "embedded store"

    def __init__(self, store: LogStore) -> None:
        self.store = store

    def write(self, batch: Sequence[LogEntry]) -> bool:
        """Store ``batch`` (a file locked beyond the busy timeout fails it)."""
        self.store.add(batch)
        return True

    def close(self) -> None:
        """Close the file."""
        self.store.close()


class _Collect(LogRecordProcessor):
    """Keeps what the SDK logger emits, for one export call (the batching is ours)."""

    def __init__(self) -> None:
        self.records: list[Any] = []

    def on_emit(self, log_record: Any) -> None:
        self.records.append(log_record)

    emit = on_emit  # the name of older SDKs

    def shutdown(self) -> None:
        self.records.clear()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


def _attribute(value: Any) -> Any:
    """An OpenTelemetry attribute value: scalars kept, lists of scalars kept, the rest JSON."""
    if isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    return orjson.dumps(value, default=str).decode()


class OtlpLogSink:
    """Batches to an OpenTelemetry collector over OTLP/HTTP (``<url>/v1/logs``).

    Each line becomes an SDK log record: its ``event`` the body, its level
    the severity, its ``trace_id``/``span_id`` the record's trace context,
    its other fields attributes; service, version and instance are
    resource attributes.

    Args:
        url: the collector's base URL (``http://collector:4318``).
        resource: resource attributes (``service.name``, ``service.version``...).
        timeout: seconds one export may take (the exporter's own retries included).
        exporter: overrides the OTLP exporter (tests).
    """

    name = "otlp"

    def __init__(
        self,
        url: str,
        *,
        resource: Mapping[str, str],
        timeout: float = 5.0,
        exporter: Any = None,
    ) -> None:
        if exporter is None:
            # the OTLP exporter pulls in protobuf and requests: only when a collector is set
            from opentelemetry.exporter.otlp.proto.http._log_exporter import (  # noqa: PLC0415
                OTLPLogExporter,
            )

            exporter = OTLPLogExporter(endpoint=url.rstrip("/") + "/v1/logs", timeout=timeout)
        self.exporter = exporter
        self.url = url
        self._collect = _Collect()
        self.provider = LoggerProvider(
            resource=Resource.create(dict(resource)), shutdown_on_exit=False
        )
        self.provider.add_log_record_processor(self._collect)
        self.logger = self.provider.get_logger("lms_shared")

    def write(self, batch: Sequence[LogEntry]) -> bool:
        """Export ``batch`` in one request."""
        for entry in batch:
            self.logger.emit(self._record(entry))
        records, self._collect.records = self._collect.records, []
        result = self.exporter.export(records)
        return getattr(result, "name", "") == "SUCCESS"

    @staticmethod
    def _record(entry: LogEntry) -> LogRecord:
        try:
            fields = orjson.loads(entry.line)
        except orjson.JSONDecodeError:
            fields = {}
        context = None
        if entry.trace_id and entry.span_id:
            try:
                span_context = SpanContext(
                    trace_id=int(entry.trace_id, 16),
                    span_id=int(entry.span_id, 16),
                    is_remote=False,
                    trace_flags=TraceFlags(TraceFlags.SAMPLED),
                )
                context = trace.set_span_in_context(NonRecordingSpan(span_context))
            except ValueError:  # a line that bound a malformed trace id of its own
                context = None
        attributes = {
            str(k): _attribute(v)
            for k, v in fields.items()
            if k not in _NOT_ATTRIBUTES and v is not None
        }
        return LogRecord(
            timestamp=entry.ts_ns,
            observed_timestamp=entry.ts_ns,
            context=context or trace.set_span_in_context(trace.INVALID_SPAN),
            severity_text=entry.level.upper(),
            severity_number=_SEVERITY.get(entry.level, SeverityNumber.INFO),
            body=entry.event,
            attributes=attributes,
        )

    def close(self) -> None:
        """Shut the exporter down."""
        self.exporter.shutdown()


class LogShipper:
    """A bounded queue of lines and the thread that hands them to a sink.

    Args:
        sink: where batches go.
        max_queue: lines waiting at most; beyond, new lines are dropped and counted.
        batch_size: lines per batch; a full batch wakes the thread early.
        interval: seconds between deliveries when batches do not fill.
    """

    def __init__(
        self,
        sink: LogSink,
        *,
        max_queue: int = 10_000,
        batch_size: int = 512,
        interval: float = 0.5,
    ) -> None:
        if max_queue < 1 or batch_size < 1 or interval <= 0:
            raise ValueError("max_queue and batch_size must be positive, interval above 0")
        self.sink = sink
        self.max_queue = max_queue
        self.batch_size = min(batch_size, max_queue)
        self.interval = interval
        self.dropped = 0
        """Lines dropped because the queue was full (or the shipper closed)."""
        self.shipped = 0
        """Lines the sink took."""
        self.failed = 0
        """Lines of batches the sink failed (a collector down, a broken file)."""
        self._queue: deque[LogEntry] = deque()
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._deliver_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._ident: int | None = None
        self._closed = False

    def __len__(self) -> int:
        """Lines waiting."""
        return len(self._queue)

    def submit(self, entry: LogEntry) -> None:
        """Queue one line, or count it dropped; never blocks, never raises."""
        if self._closed or len(self._queue) >= self.max_queue:
            self.dropped += 1
            return
        if threading.get_ident() == self._ident:
            return  # the exporter's own complaints are printed, not shipped
        self._queue.append(entry)
        if self._thread is None:
            self._start()
        elif len(self._queue) >= self.batch_size:
            self._wake.set()

    def _start(self) -> None:
        with self._lock:
            if self._thread is not None or self._closed:
                return
            thread = threading.Thread(target=self._run, name="lms-log-shipper", daemon=True)
            self._thread = thread
            thread.start()

    def _run(self) -> None:
        self._ident = threading.get_ident()
        while not self._closed:
            self._wake.wait(self.interval)
            self._wake.clear()
            self._deliver()
        self._deliver()

    def _deliver(self) -> None:
        with self._deliver_lock:
            while self._queue:
                batch: list[LogEntry] = []
                while self._queue and len(batch) < self.batch_size:
                    batch.append(self._queue.popleft())
                try:
                    ok = self.sink.write(batch)
                except Exception:  # a sink's failure fails its batch, nothing else
                    ok = False
                if ok:
                    self.shipped += len(batch)
                else:
                    self.failed += len(batch)

    def flush(self) -> None:
        """Deliver what is queued now, on the caller's thread (blocking: tests, shutdown)."""
        self._deliver()

    def close(self, timeout: float = 5.0) -> None:
        """Deliver what is left (waiting ``timeout`` seconds at most) and close the sink.

        Lines submitted later are dropped. A sink still busy after the
        timeout (a collector that does not answer) is left to the daemon
        thread; the process is not held up.
        """
        if self._closed:
            return
        self._closed = True
        self._wake.set()
        thread = self._thread
        if thread is None:
            self._deliver()
        elif thread is not threading.current_thread():
            thread.join(timeout)
            if thread.is_alive():
                return
        with suppress(Exception):  # closing a broken sink must not fail a shutdown
            self.sink.close()

    def stats(self) -> dict[str, int]:
        """``queued``, ``shipped``, ``failed`` and ``dropped`` lines (metrics, health)."""
        return {
            "queued": len(self._queue),
            "shipped": self.shipped,
            "failed": self.failed,
            "dropped": self.dropped,
        }
