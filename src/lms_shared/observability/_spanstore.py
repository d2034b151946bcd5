"""The embedded span store: finished spans in one SQLite file, shared by a machine's processes.

With ``LMS_TELEMETRY_URL`` unset, each service's spans go to
``<state_dir>/telemetry/spans.sqlite3``, so ``lms-shared traces show``
prints a trace across every process of the demo. The exporter runs on the
span processor's worker thread, never on the event loop, so the standard
library's ``sqlite3`` is used as is (WAL, a busy timeout); the file keeps
the newest :data:`DEFAULT_MAX_SPANS` spans.

The store is made for writing: every request of every service adds a span,
reading is a person at ``lms-shared traces``. So the only index is on time
(appended in order); a random-key index on trace ids cost 25 µs more per
span once the file held its first 50,000 (each insert and each trimmed row
dirties another page), three times what the rest of the write costs. A
trace is found by a scan (tens of milliseconds at the bound), and a span
exported twice (a retried batch) is stored twice and read once.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import SpanKind, StatusCode

from lms_shared.observability._serverspan import ServerSpan, TakesServerSpans

__all__ = [
    "DEFAULT_MAX_SPANS",
    "SpanRecord",
    "SpanRow",
    "SpanStore",
    "SpanStoreExporter",
    "TraceSummary",
    "server_row",
]

DEFAULT_MAX_SPANS = 200_000
_SCHEMA = """
DROP TABLE IF EXISTS spans;
CREATE TABLE IF NOT EXISTS span_rows (
    trace_id TEXT NOT NULL,
    span_id TEXT NOT NULL,
    parent_id TEXT,
    service TEXT NOT NULL,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    start_ns INTEGER NOT NULL,
    end_ns INTEGER NOT NULL,
    status TEXT NOT NULL,
    attributes TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS span_rows_by_start ON span_rows (start_ns);
"""
_MAX_ATTRIBUTES_BYTES = 16 * 1024

SpanRow = tuple[str, str, str | None, str, str, str, int, int, str, str]
"""A span as ``span_rows`` holds it (the attributes as JSON)."""


def _dumps(attributes: dict[str, Any]) -> str:
    return orjson.dumps(attributes, default=str, option=orjson.OPT_NON_STR_KEYS).decode()


@dataclass(frozen=True, slots=True)
class SpanRecord:
    """One finished span as stored."""

    trace_id: str
    span_id: str
    parent_id: str | None
    service: str
    name: str
    kind: str
    start_ns: int
    end_ns: int
    status: str
    attributes: dict[str, Any] = field(default_factory=dict)

    @property
    def duration_ms(self) -> float:
        """How long it took."""
        return (self.end_ns - self.start_ns) / 1e6


@dataclass(frozen=True, slots=True)
class TraceSummary:
    """One trace in a listing: its root, services, size and span of time."""

    trace_id: str
    root: str
    services: tuple[str, ...]
    spans: int
    start_ns: int
    duration_ms: float
    errors: int


def _kind(kind: SpanKind) -> str:
    return kind.name.lower()


class SpanStore:
    """The spans of one SQLite file.

    Args:
        path: the database file (made with its folder on first use).
        max_spans: the newest spans kept.
    """

    def __init__(self, path: Path, *, max_spans: int = DEFAULT_MAX_SPANS) -> None:
        self.path = Path(path)
        self.max_spans = max_spans
        self._local = threading.local()

    @classmethod
    def in_state_dir(cls, state_dir: Path) -> SpanStore:
        """The store of a state folder (``<state_dir>/telemetry/spans.sqlite3``)."""
        return cls(Path(state_dir) / "telemetry" / "spans.sqlite3")

    def _connect(self) -> sqlite3.Connection:
        found: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if found is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            found = sqlite3.connect(self.path, timeout=5.0, isolation_level=None)
            found.execute("PRAGMA journal_mode=WAL")
            found.execute("PRAGMA synchronous=NORMAL")
            found.executescript(_SCHEMA)
            self._local.conn = found
        return found

    def add(self, records: Sequence[SpanRecord]) -> None:
        """Keep ``records`` (a span seen again is read once)."""
        self.add_rows([_row(r) for r in records])

    def add_rows(self, rows: Sequence[SpanRow]) -> None:
        """Keep spans already in their stored form (:func:`server_row`; the exporter's path)."""
        conn = self._connect()
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.executemany("INSERT INTO span_rows VALUES (?,?,?,?,?,?,?,?,?,?)", rows)
            # rowids only grow: the newest max_spans are the top rowids (an
            # ORDER BY ... OFFSET walk would read every one of them)
            conn.execute(
                "DELETE FROM span_rows WHERE rowid <= (SELECT MAX(rowid) FROM span_rows) - ?",
                (self.max_spans,),
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def dependency_spans(self, *, since_ns: int = 0, limit: int = 100_000) -> list[dict[str, Any]]:
        """The newest CLIENT, PRODUCER and CONSUMER spans (service, kind, attributes).

        What the dependency map is drawn from; bounded by ``limit``.
        """
        if not self.path.exists():
            return []
        rows = self._connect().execute(
            "SELECT service, kind, attributes FROM span_rows "
            "WHERE kind IN ('client', 'producer', 'consumer') AND start_ns >= ? "
            "ORDER BY start_ns DESC LIMIT ?",
            (since_ns, limit),
        )
        out: list[dict[str, Any]] = []
        for service, kind, attributes in rows:
            try:
                parsed = json.loads(attributes) if attributes else {}
            except ValueError:
                parsed = {}
            out.append({"service": service, "kind": kind, "attributes": parsed})
        return out

    def trace(self, trace_id: str) -> list[SpanRecord]:
        """Every stored span of ``trace_id``, oldest first."""
        if not self.path.exists():
            return []
        rows = self._connect().execute(
            "SELECT * FROM span_rows WHERE trace_id = ? ORDER BY start_ns", (trace_id.lower(),)
        )
        return _once([self._record(row) for row in rows])

    def traces(self, *, limit: int = 20, service: str | None = None) -> list[TraceSummary]:
        """The newest traces (by their first span), newest first."""
        if not self.path.exists():
            return []
        # one fixed statement: "? IS NULL" switches the service filter off
        query = (
            "SELECT trace_id, MIN(start_ns) AS first, MAX(end_ns), COUNT(DISTINCT span_id), "
            "GROUP_CONCAT(DISTINCT service), COUNT(DISTINCT CASE WHEN status = 'error' "
            "THEN span_id END) FROM span_rows "
            "WHERE ? IS NULL OR trace_id IN (SELECT trace_id FROM span_rows WHERE service = ?) "
            "GROUP BY trace_id ORDER BY first DESC LIMIT ?"
        )
        args: tuple[Any, ...] = (service, service, limit)
        conn = self._connect()
        summaries = list(conn.execute(query, args))
        roots: dict[str, tuple[int, int, str, str]] = {}  # one scan for every root
        ids = [row[0] for row in summaries]
        marks = ",".join("?" * len(ids))
        for trace_id, service_name, name, parent_id, start_ns in conn.execute(
            "SELECT trace_id, service, name, parent_id, start_ns FROM span_rows "  # noqa: S608
            f"WHERE trace_id IN ({marks})",
            ids,
        ):
            rank = (parent_id is not None, start_ns, service_name, name)
            if trace_id not in roots or rank < roots[trace_id]:
                roots[trace_id] = rank
        found: list[TraceSummary] = []
        for trace_id, first, last, count, services, errors in summaries:
            root = roots[trace_id][2:]
            found.append(
                TraceSummary(
                    trace_id=trace_id,
                    root=f"{root[0]}: {root[1]}",
                    services=tuple(sorted(set(services.split(",")))),
                    spans=count,
                    start_ns=first,
                    duration_ms=(last - first) / 1e6,
                    errors=int(errors or 0),
                )
            )
        return found

    @staticmethod
    def _record(row: tuple[Any, ...]) -> SpanRecord:
        try:
            attributes = json.loads(row[9])
        except ValueError:
            attributes = {}
        trace_id, span_id, parent_id, service, name, kind, start_ns, end_ns, status = row[:9]
        return SpanRecord(
            trace_id,
            span_id,
            parent_id,
            service,
            name,
            kind,
            start_ns,
            end_ns,
            status,
            attributes if isinstance(attributes, dict) else {},
        )

    def close(self) -> None:
        """Close this thread's connection."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


def _once(records: list[SpanRecord]) -> list[SpanRecord]:
    """``records`` without the second copy of a span stored twice."""
    seen: set[str] = set()
    out = []
    for record in records:
        if record.span_id not in seen:
            seen.add(record.span_id)
            out.append(record)
    return out


class SpanStoreExporter(SpanExporter, TakesServerSpans):
    """An OpenTelemetry span exporter into a :class:`SpanStore`.

    Takes the chassis' own server spans as they are (no SDK copy first).
    """

    def __init__(self, store: SpanStore) -> None:
        self.store = store

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Store ``spans``; a locked or broken file fails the batch, never the caller."""
        rows = [
            server_row(span) if isinstance(span, ServerSpan) else _row(record_of(span))
            for span in spans
        ]
        try:
            self.store.add_rows(rows)
        except sqlite3.Error:
            return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        """Close the file."""
        self.store.close()


def server_row(span: ServerSpan) -> SpanRow:
    """The stored row of a finished :class:`ServerSpan`, built directly (every request's path)."""
    context, parent, name, start_ns, end_ns, status, resource = span.fields()
    return (
        f"{context.trace_id:032x}",
        f"{context.span_id:016x}",
        f"{parent.span_id:016x}" if parent is not None else None,
        str(resource.attributes.get("service.name", "unknown")),
        name,
        "server",
        start_ns,
        end_ns,
        "error" if status.status_code is StatusCode.ERROR else "ok",
        _dumps(span.attributes_dict())[:_MAX_ATTRIBUTES_BYTES],
    )


def _row(r: SpanRecord) -> SpanRow:
    return (
        r.trace_id,
        r.span_id,
        r.parent_id,
        r.service,
        r.name,
        r.kind,
        r.start_ns,
        r.end_ns,
        r.status,
        _dumps(r.attributes)[:_MAX_ATTRIBUTES_BYTES],
    )


def record_of(span: ReadableSpan) -> SpanRecord:
    """The stored form of a finished SDK span."""
    context = span.get_span_context()
    parent = span.parent
    status = span.status.status_code
    return SpanRecord(
        trace_id=f"{context.trace_id:032x}" if context else "0" * 32,
        span_id=f"{context.span_id:016x}" if context else "0" * 16,
        parent_id=f"{parent.span_id:016x}" if parent is not None else None,
        service=str(span.resource.attributes.get("service.name", "unknown")),
        name=span.name,
        kind=_kind(span.kind),
        start_ns=span.start_time or 0,
        end_ns=span.end_time or span.start_time or 0,
        status="error" if status is StatusCode.ERROR else "ok",
        attributes=dict(span.attributes or {}),
    )
