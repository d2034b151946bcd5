"""A batch span processor that never blocks, counts what it drops, and owns no thread.

Written here because the SDK's ``BatchSpanProcessor`` logs a warning for
every span it drops when its queue is full (a collector that is down would
flood the logs), counts drops only through an opt-in internal meter, and
starts a thread per processor whether or not the service ever runs (a test
process builds hundreds of services). This one keeps a bounded deque;
the service's :class:`~._tracing.Tracing` component exports it from a task
of the event loop, each batch on a worker thread (``asyncio.to_thread``),
and wakes that task early when a batch is full. Plain counters
(:attr:`dropped`, :attr:`exported`, :attr:`failed`) feed metrics and health.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from lms_shared.observability._serverspan import TakesServerSpans, readable_spans

__all__ = ["BoundedBatchProcessor"]


class BoundedBatchProcessor(SpanProcessor):
    """Queue finished, sampled spans (dropping new ones when full) for batch export.

    Args:
        exporter: where batches go (OTLP, the embedded store, memory).
        max_queue: spans held at most; beyond, new spans are dropped and counted.
        batch_size: spans per export; a full batch wakes the exporting task.
    """

    def __init__(
        self, exporter: SpanExporter, *, max_queue: int = 2048, batch_size: int = 512
    ) -> None:
        self.exporter = exporter
        self.max_queue = max_queue
        self.batch_size = min(batch_size, max_queue)
        self.dropped = 0
        self.exported = 0
        self.failed = 0
        self.wake: Callable[[], None] | None = None
        """Set by the exporting task: called (once per full batch) to wake it."""
        self._queue: deque[ReadableSpan] = deque()
        self._woken = False
        self._stopped = False
        self._export_lock = threading.Lock()

    def __len__(self) -> int:
        """Spans waiting for export."""
        return len(self._queue)

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        """Nothing to do when a span starts."""

    def on_end(self, span: ReadableSpan) -> None:
        """Queue a finished span, or count it dropped (never blocks).

        A :class:`~._serverspan.ServerSpan` is queued as it is and converted
        when its batch is exported.
        """
        if self._stopped:
            return
        if len(self._queue) >= self.max_queue:
            self.dropped += 1
            return
        self._queue.append(span)
        if len(self._queue) >= self.batch_size and not self._woken and self.wake is not None:
            self._woken = True
            self.wake()

    def export_pending(self) -> int:
        """Export everything queued now, batch by batch (blocking: run it off the loop).

        Returns:
            The spans taken from the queue.
        """
        taken = 0
        with self._export_lock:
            self._woken = False
            while self._queue:
                batch: list[ReadableSpan] = []
                while self._queue and len(batch) < self.batch_size:
                    batch.append(self._queue.popleft())
                taken += len(batch)
                try:
                    exporter = self.exporter
                    spans = (
                        batch if isinstance(exporter, TakesServerSpans) else readable_spans(batch)
                    )
                    result = exporter.export(spans)
                except Exception:  # an exporter's bug fails its batch, nothing else
                    result = SpanExportResult.FAILURE
                if result is SpanExportResult.SUCCESS:
                    self.exported += len(batch)
                else:
                    self.failed += len(batch)
        return taken

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Export what is queued now, on the caller's thread."""
        self.export_pending()
        return not self._queue

    def shutdown(self) -> None:
        """Export what is left, then shut the exporter down; later spans are ignored."""
        if self._stopped:
            return
        self._stopped = True
        self.export_pending()
        self.exporter.shutdown()
