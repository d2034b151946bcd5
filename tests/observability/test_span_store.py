"""The embedded span store: written for speed, read by people."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace.export import SpanExportResult
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, Status, StatusCode

from lms_shared.observability._logstore import LogEntry, LogStore
from lms_shared.observability._serverspan import ServerSpan
from lms_shared.observability._spanstore import (
    SpanRecord,
    SpanStore,
    SpanStoreExporter,
    server_row,
)

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


def record(
    span_id: str, *, parent: str | None = None, start: int = 1, **more: object
) -> SpanRecord:
    fields: dict[str, object] = {
        "trace_id": TRACE,
        "span_id": span_id,
        "parent_id": parent,
        "service": "courses",
        "name": f"span {span_id}",
        "kind": "server",
        "start_ns": start,
        "end_ns": start + 10,
        "status": "ok",
        "attributes": {"n": 1},
    }
    fields.update(more)
    return SpanRecord(**fields)  # type: ignore[arg-type]


def test_a_span_exported_twice_is_read_once(tmp_path: Path) -> None:
    store = SpanStore(tmp_path / "spans.sqlite3")
    root = record("00f067aa0ba902b7", start=1)
    child = record("00f067aa0ba902b8", parent=root.span_id, start=2, status="error")
    store.add([root, child])
    store.add([child])  # a retried batch
    assert [s.span_id for s in store.trace(TRACE)] == [root.span_id, child.span_id]
    [summary] = store.traces()
    assert summary.spans == 2
    assert summary.errors == 1
    assert summary.root == f"courses: {root.name}"


def test_the_newest_spans_are_kept(tmp_path: Path) -> None:
    store = SpanStore(tmp_path / "spans.sqlite3", max_spans=5)
    for i in range(12):
        store.add([record(f"{i:016x}", start=i)])
    kept = store.trace(TRACE)
    assert [s.start_ns for s in kept] == [7, 8, 9, 10, 11]


def test_a_file_of_the_old_layout_is_replaced(tmp_path: Path) -> None:
    path = tmp_path / "spans.sqlite3"
    with sqlite3.connect(path) as old:
        old.execute(
            "CREATE TABLE spans (trace_id TEXT, span_id TEXT, PRIMARY KEY (trace_id, span_id))"
        )
    store = SpanStore(path)
    store.add([record("00f067aa0ba902b7")])
    assert len(store.trace(TRACE)) == 1
    with sqlite3.connect(path) as conn:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
    assert "spans" not in tables


def test_a_server_span_is_stored_directly_as_a_row(tmp_path: Path) -> None:
    parent = SpanContext(int(TRACE, 16), 0x00F067AA0BA902B7, is_remote=True)
    context = SpanContext(int(TRACE, 16), 0x00F067AA0BA902B8, is_remote=False)
    span = ServerSpan(
        "GET /v1/courses/{course_id}",
        context,
        parent,
        {"http.request.method": "GET", "http.response.status_code": 503},
        finish=lambda _: None,
        resource=Resource.create({"service.name": "courses"}),
        scope=InstrumentationScope("test"),
    )
    span.set_status(Status(StatusCode.ERROR))
    span.end()
    row = server_row(span)
    assert row == (
        TRACE,
        "00f067aa0ba902b8",
        "00f067aa0ba902b7",
        "courses",
        "GET /v1/courses/{course_id}",
        "server",
        row[6],
        row[7],
        "error",
        '{"http.request.method":"GET","http.response.status_code":503}',
    )
    assert 0 < row[6] <= row[7]
    store = SpanStore(tmp_path / "spans.sqlite3")
    assert SpanStoreExporter(store).export([span]) is SpanExportResult.SUCCESS
    [stored] = store.trace(TRACE)
    assert (stored.span_id, stored.parent_id, stored.status) == (row[1], row[2], "error")
    assert stored.attributes == {"http.request.method": "GET", "http.response.status_code": 503}


def test_the_log_store_indexes_only_what_is_appended_in_order(tmp_path: Path) -> None:
    store = LogStore(tmp_path / "logs.sqlite3")
    entry = LogEntry(
        ts_ns=1,
        level="info",
        service="courses",
        logger="lms.access",
        event="request",
        trace_id=TRACE,
        span_id="00f067aa0ba902b7",
        request_id="r-1",
        line='{"event": "request"}',
    )
    store.add([entry])
    with sqlite3.connect(store.path) as conn:
        indexes = {
            row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")
        }
    assert indexes == {"log_batches_by_upto"}  # the running line count: pruning
    # searches by the ids still find the line (by a scan)
    assert [e.request_id for e in store.search(trace_id=TRACE)] == ["r-1"]
    assert [e.trace_id for e in store.search(request_id="r-1")] == [TRACE]
