"""The SERVER span's own path: sampling, ids, the API ``Span`` contract, export."""

from __future__ import annotations

from pathlib import Path

import pytest
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import NonRecordingSpan, SpanKind, Status, StatusCode

from lms_shared.observability._processor import BoundedBatchProcessor
from lms_shared.observability._serverspan import MAX_ATTRIBUTES, MAX_EVENTS, ServerSpan
from lms_shared.observability._spanstore import SpanStore, SpanStoreExporter
from lms_shared.observability._tracing import Tracing, TracingConfig
from lms_shared.testing import record_spans

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"


def tracing(ratio: float = 1.0) -> tuple[Tracing, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    config = TracingConfig("courses", "1.0", sample_ratio=ratio)
    return Tracing(config, processor=BoundedBatchProcessor(exporter)), exporter


def caller(flags: str = "01") -> otel_context.Context:
    return Tracing(TracingConfig("x", "1")).extract({"traceparent": f"00-{TRACE}-{PARENT}-{flags}"})


def test_a_new_trace_gets_random_ids_and_is_exported_as_an_sdk_span() -> None:
    traced, exporter = tracing()
    span = traced.start_server_span("GET", otel_context.Context(), {"url.path": "/v1/x"})
    assert isinstance(span, ServerSpan)
    context = span.get_span_context()
    assert context.is_valid
    assert context.trace_flags.sampled
    assert not context.is_remote
    assert traced.ids.is_random(context.trace_id)
    span.update_name("GET /v1/x")
    span.set_attribute("http.response.status_code", 200)
    span.end()
    span.end()  # once only
    assert exporter.get_finished_spans() == ()  # queued, converted when exported
    traced.processor.force_flush()
    [done] = exporter.get_finished_spans()
    assert done.name == "GET /v1/x"
    assert done.kind is SpanKind.SERVER
    assert done.parent is None
    assert done.context == context
    assert done.attributes == {"url.path": "/v1/x", "http.response.status_code": 200}
    assert done.resource.attributes["service.name"] == "courses"
    assert done.start_time is not None
    assert done.end_time is not None
    assert done.start_time <= done.end_time


def test_a_callers_trace_is_continued_with_a_new_span_id() -> None:
    traced, exporter = tracing()
    span = traced.start_server_span("GET", caller(), {})
    context = span.get_span_context()
    assert f"{context.trace_id:032x}" == TRACE
    assert f"{context.span_id:016x}" != PARENT
    span.end()
    traced.processor.force_flush()
    [done] = exporter.get_finished_spans()
    assert done.parent is not None
    assert f"{done.parent.span_id:016x}" == PARENT
    assert done.parent.is_remote


def test_sampling_follows_the_parent_then_the_ratio() -> None:
    traced, _ = tracing(ratio=1.0)
    unsampled = traced.start_server_span("GET", caller("00"), {})
    assert isinstance(unsampled, NonRecordingSpan)
    assert f"{unsampled.get_span_context().trace_id:032x}" == TRACE  # ids still carried
    never, _ = tracing(ratio=0.0)
    fresh = never.start_server_span("GET", otel_context.Context(), {})
    assert isinstance(fresh, NonRecordingSpan)
    assert fresh.get_span_context().is_valid
    assert isinstance(never.start_server_span("GET", caller("01"), {}), ServerSpan)


def test_the_api_contract_after_the_end_and_at_the_limits() -> None:
    traced, exporter = tracing()
    span = traced.start_server_span("GET", otel_context.Context(), {})
    assert isinstance(span, ServerSpan)
    for i in range(MAX_ATTRIBUTES + 10):
        span.set_attribute(f"a{i}", i)
    span.set_attributes({"a0": "again"})  # an existing key is replaced at the limit
    for i in range(MAX_EVENTS + 5):
        span.add_event(f"e{i}")
    span.set_status(Status(StatusCode.OK))
    span.set_status(StatusCode.ERROR, "ignored: OK is final")
    assert len(span.attributes) == MAX_ATTRIBUTES
    assert span.attributes["a0"] == "again"
    span.end()
    assert not span.is_recording()
    assert span.ended
    span.set_attribute("late", True)
    span.update_name("late")
    span.add_event("late")
    traced.processor.force_flush()
    [done] = exporter.get_finished_spans()
    assert "late" not in done.attributes
    assert done.name == "GET"
    assert len(done.events) == MAX_EVENTS
    assert done.status.status_code is StatusCode.OK


def test_an_exception_is_recorded_as_the_semantic_conventions_say() -> None:
    traced, exporter = tracing()
    span = traced.start_server_span("GET", otel_context.Context(), {})
    with pytest.raises(ValueError, match="bad"), span:
        raise ValueError("bad")
    traced.processor.force_flush()
    [done] = exporter.get_finished_spans()
    [event] = done.events
    assert event.name == "exception"
    assert event.attributes is not None
    assert event.attributes["exception.type"] == "ValueError"
    assert event.attributes["exception.message"] == "bad"
    assert "raise ValueError" in str(event.attributes["exception.stacktrace"])
    assert done.status.status_code is StatusCode.ERROR


def test_children_and_other_processors_see_it_as_any_span() -> None:
    traced, _ = tracing()
    recorded = record_spans(traced)  # a second processor: converted at once
    span = traced.start_server_span("GET", otel_context.Context(), {})
    token = otel_context.attach(trace.set_span_in_context(span))
    try:
        assert trace.get_current_span() is span
        with traced.tracer.start_as_current_span("child"):
            pass
    finally:
        otel_context.detach(token)
    span.end()
    [server] = recorded.named("GET")
    [child] = recorded.named("child")
    assert child.parent_id == server.span_id
    assert child.trace_id == server.trace_id


def test_the_embedded_store_takes_server_spans_as_they_are(tmp_path: Path) -> None:
    store = SpanStore(tmp_path / "spans.sqlite3")
    traced = Tracing(
        TracingConfig("courses", "1.0"), processor=BoundedBatchProcessor(SpanStoreExporter(store))
    )
    span = traced.start_server_span("GET", caller(), {"http.route": "/v1/x"})
    span.set_status(StatusCode.ERROR)
    span.end()
    traced.processor.force_flush()
    [stored] = store.trace(TRACE)
    assert stored.kind == "server"
    assert stored.parent_id == PARENT
    assert stored.service == "courses"
    assert stored.status == "error"
    assert stored.attributes == {"http.route": "/v1/x"}
    assert stored.span_id == f"{span.get_span_context().span_id:016x}"


async def test_the_standalone_middleware_traces_an_app_of_its_own() -> None:
    import httpx
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from lms_shared.http.tracing import TracingMiddleware

    async def boom(_: object) -> JSONResponse:
        raise RuntimeError("broke")

    async def ok(_: object) -> JSONResponse:
        return JSONResponse(
            {"trace": f"{trace.get_current_span().get_span_context().trace_id:032x}"}
        )

    traced, _ = tracing()
    recorded = record_spans(traced)
    app = TracingMiddleware(
        Starlette(routes=[Route("/v1/items/{item}", ok), Route("/v1/boom", boom)]), tracing=traced
    )
    headers = {"traceparent": f"00-{TRACE}-{PARENT}-01"}
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        answer = await client.get("/v1/items/7", headers=headers)
        failed = await client.get("/v1/boom")
    assert answer.json() == {"trace": TRACE}
    assert failed.status_code == 500
    [item] = recorded.named("GET /v1/items/{item}")
    assert item.trace_id == TRACE
    assert item.parent_id == PARENT
    assert item.attributes["http.response.status_code"] == 200
    [broken] = recorded.named("GET /v1/boom")
    assert broken.status == "error"
