"""Tracing through a service: server spans, W3C in and out, B3, baggage, the embedded store."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from opentelemetry import baggage
from opentelemetry import context as otel_context
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from lms_shared import Service, create_service, load_settings
from lms_shared.observability import current_trace_id, span, traced
from lms_shared.observability._processor import BoundedBatchProcessor
from lms_shared.observability._spanstore import SpanStore
from lms_shared.observability._tracing import Tracing, TracingConfig
from lms_shared.testing import record_spans, service_client

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"


@traced
async def load_course(course_id: str) -> str:
    with span("course.cache", attributes={"course.id": course_id}):
        return f"course {course_id}"


def build(**settings: object) -> Service:
    service = create_service("courses", "1.4.0", settings=load_settings(**settings))

    @service.router.get("/v1/courses/{course_id}")
    async def course(course_id: str) -> dict[str, str | None]:
        await load_course(course_id)
        return {"trace": current_trace_id(), "tenant": baggage.get_baggage("tenant")}  # type: ignore[dict-item]

    @service.router.get("/v1/boom")
    async def boom() -> None:
        raise RuntimeError("it broke")

    return service


async def test_a_request_continues_the_callers_trace() -> None:
    service = build()
    spans = record_spans(service)
    headers = {
        "traceparent": f"00-{TRACE}-{PARENT}-03",
        "tracestate": "congo=t61rcWkgMzE",
        "baggage": "tenant=acme,user=ada",
    }
    async with service_client(service) as client:
        response = await client.get("/v1/courses/c1", headers=headers)
    assert response.json() == {"trace": TRACE, "tenant": "acme"}
    [server] = spans.named("GET /v1/courses/{course_id}")
    assert server.trace_id == TRACE
    assert server.parent_id == PARENT
    assert server.kind == "server"
    assert server.service == "courses"
    assert server.attributes["http.route"] == "/v1/courses/{course_id}"
    assert server.attributes["http.response.status_code"] == 200
    assert server.attributes["url.path"] == "/v1/courses/c1"
    [function] = spans.children(server)
    assert function.name.endswith("load_course")
    [cache] = spans.children(function)
    assert cache.attributes == {"course.id": "c1"}
    assert spans.tree(TRACE) == [
        "courses: GET /v1/courses/{course_id}",
        f"  courses: {function.name}",
        "    courses: course.cache",
    ]


@pytest.mark.parametrize(
    "headers",
    [
        {"traceparent": f"00-{TRACE.upper()}-{PARENT}-01"},
        {"traceparent": f"00-{'0' * 32}-{PARENT}-01"},
        {"traceparent": f"ff-{TRACE}-{PARENT}-01"},
        {"traceparent": "00-" + "a" * 9000},
    ],
)
async def test_a_bad_traceparent_starts_a_new_trace(headers: dict[str, str]) -> None:
    service = build()
    spans = record_spans(service)
    async with service_client(service) as client:
        response = await client.get("/v1/courses/c1", headers=headers)
    assert response.status_code == 200
    [server] = spans.named("GET /v1/courses/{course_id}")
    assert server.trace_id != TRACE
    assert server.parent_id is None
    assert response.json()["trace"] == server.trace_id


async def test_duplicated_traceparent_headers_start_a_new_trace() -> None:
    service = build()
    spans = record_spans(service)
    twice = [("traceparent", f"00-{TRACE}-{PARENT}-01"), ("traceparent", f"00-{TRACE}-{PARENT}-01")]
    async with service_client(service) as client:
        await client.get("/v1/courses/c1", headers=twice)
    [server] = spans.named("GET /v1/courses/{course_id}")
    assert server.trace_id != TRACE


async def test_b3_is_read_when_no_traceparent_comes() -> None:
    service = build()
    spans = record_spans(service)
    async with service_client(service) as client:
        await client.get("/v1/courses/c1", headers={"b3": f"{TRACE}-{PARENT}-1"})
    [server] = spans.named("GET /v1/courses/{course_id}")
    assert (server.trace_id, server.parent_id) == (TRACE, PARENT)


async def test_a_failure_marks_the_span_and_raw_paths_never_name_it() -> None:
    service = build()
    spans = record_spans(service)
    async with service_client(service) as client:
        failed = await client.get("/v1/boom")
        missing = await client.get("/v1/nothing/here/123")
    assert failed.status_code == 500
    assert missing.status_code == 404
    [boom] = spans.named("GET /v1/boom")
    assert boom.status == "error"
    assert boom.attributes["http.response.status_code"] == 500
    assert [s.name for s in spans.spans if "nothing" in s.name] == []
    assert any(
        s.name == "GET" and s.attributes["http.response.status_code"] == 404 for s in spans.spans
    )


def test_outgoing_headers_carry_a_new_parent_the_random_flag_and_b3() -> None:
    tracing = Tracing(TracingConfig("grading", "1.0"), processor=BoundedBatchProcessor(_Null()))
    incoming = tracing.extract({"traceparent": f"00-{TRACE}-{PARENT}-03", "tracestate": "a=1"})
    token = otel_context.attach(incoming)
    try:
        with tracing.tracer.start_as_current_span("call") as current:
            headers: dict[str, str] = {}
            tracing.inject(headers)
            span_id = f"{current.get_span_context().span_id:016x}"
    finally:
        otel_context.detach(token)
    assert headers["traceparent"] == f"00-{TRACE}-{span_id}-03"  # random flag kept
    assert span_id != PARENT
    assert headers["tracestate"] == "a=1"
    assert headers["b3"] == f"{TRACE}-{span_id}-1"
    # a root trace of ours is random; one from a parent without the flag is not
    with tracing.tracer.start_as_current_span("root"):
        mine: dict[str, str] = {}
        tracing.inject(mine)
    assert mine["traceparent"].endswith("-03")
    plain = tracing.extract({"traceparent": f"00-{'1' * 32}-{PARENT}-01"})
    token = otel_context.attach(plain)
    try:
        with tracing.tracer.start_as_current_span("child"):
            theirs: dict[str, str] = {}
            tracing.inject(theirs)
    finally:
        otel_context.detach(token)
    assert theirs["traceparent"].endswith("-01")


class _Null(SpanExporter):
    def export(self, spans: object) -> SpanExportResult:
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        return None


class _Failing(SpanExporter):
    def __init__(self) -> None:
        self.calls = 0

    def export(self, spans: object) -> SpanExportResult:
        self.calls += 1
        raise ConnectionRefusedError("collector down")

    def shutdown(self) -> None:
        return None


def test_a_full_queue_drops_and_counts_and_never_blocks() -> None:
    failing = _Failing()
    processor = BoundedBatchProcessor(failing, max_queue=10, batch_size=5)
    tracing = Tracing(TracingConfig("grading", "1.0"), processor=processor)
    for index in range(25):
        with tracing.tracer.start_as_current_span(f"s{index}"):
            pass
    assert (len(processor), processor.dropped) == (10, 15)
    assert processor.export_pending() == 10
    assert (processor.failed, processor.exported, failing.calls) == (10, 0, 2)
    assert tracing.dropped == 15


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_a_collector_that_is_down_never_fails_a_request(tmp_path: Path) -> None:
    service = build(telemetry_url=f"http://127.0.0.1:{free_port()}", state_dir=tmp_path)
    async with service_client(service) as client:
        answers = [await client.get("/v1/courses/c1") for _ in range(20)]
        await asyncio.sleep(0)
    assert {a.status_code for a in answers} == {200}
    processor = service.tracing.processor
    assert isinstance(processor, BoundedBatchProcessor)
    assert processor.failed + processor.dropped + len(processor) >= 20  # none were exported
    assert processor.exported == 0


async def test_the_embedded_store_keeps_spans_across_services(tmp_path: Path) -> None:
    first = build(state_dir=tmp_path)
    other = create_service("grading", "2.0.0", settings=load_settings(state_dir=tmp_path))

    @other.router.get("/v1/grades")
    async def grades() -> dict[str, bool]:
        return {"ok": True}

    async with service_client(first) as a, service_client(other) as b:
        answer = await a.get("/v1/courses/c1")
        trace_id = answer.json()["trace"]
        await b.get("/v1/grades", headers={"traceparent": f"00-{trace_id}-{PARENT}-01"})
    store = SpanStore.in_state_dir(tmp_path)
    found = store.trace(trace_id)
    assert {s.service for s in found} == {"courses", "grading"}
    assert [t.trace_id for t in store.traces(service="grading")] == [trace_id]
    [summary] = [t for t in store.traces() if t.trace_id == trace_id]
    assert summary.services == ("courses", "grading")
    assert summary.spans == len(found) == 4


async def test_spans_outside_any_service_are_no_ops() -> None:
    with span("nothing") as current:
        assert not current.get_span_context().is_valid
    assert await load_course("c9") == "course c9"


def test_sample_ratio_zero_records_no_new_traces(make_service: Callable[..., Service]) -> None:
    service = make_service(trace_sample_ratio=0.0)
    spans = record_spans(service)
    with service.tracing.tracer.start_as_current_span("root"):
        pass
    assert spans.spans == []


async def test_httpx_round_trip_over_a_real_socket(tmp_path: Path) -> None:
    """The headers survive a real server: uvicorn on loopback."""
    import uvicorn

    service = build(state_dir=tmp_path)
    spans = record_spans(service)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(service.app, port=port, log_config=None, lifespan="on"))
    task = asyncio.create_task(server.serve())
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            for _ in range(100):
                if server.started:
                    break
                await asyncio.sleep(0.05)
            answer = await client.get(
                "/v1/courses/c1", headers={"traceparent": f"00-{TRACE}-{PARENT}-01"}
            )
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)
    assert answer.json()["trace"] == TRACE
    assert spans.named("GET /v1/courses/{course_id}")[0].parent_id == PARENT


async def test_the_traces_cli_prints_a_tree_across_services(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from lms_shared.cli import app as cli

    first = build(state_dir=tmp_path)
    other = create_service("grading", "2.0.0", settings=load_settings(state_dir=tmp_path))

    @other.router.get("/v1/grades")
    async def grades() -> dict[str, bool]:
        return {"ok": True}

    async with service_client(first) as a, service_client(other) as b:
        trace_id = (await a.get("/v1/courses/c1")).json()["trace"]
        await b.get("/v1/grades", headers={"traceparent": f"00-{trace_id}-{PARENT}-01"})
    monkeypatch.setenv("LMS_STATE_DIR", str(tmp_path))
    runner = CliRunner()
    listed = runner.invoke(cli, ["traces", "list", "--service", "courses"])
    shown = runner.invoke(cli, ["traces", "show", trace_id])
    bad = runner.invoke(cli, ["traces", "show", "not-a-trace"])
    unknown = runner.invoke(cli, ["traces", "show", "a" * 32])
    assert listed.exit_code == 0, listed.output
    assert trace_id in listed.output
    assert "courses, grading" in listed.output
    assert shown.exit_code == 0, shown.output
    lines = shown.output.splitlines()
    assert lines[0] == f"trace {trace_id}"
    assert lines[1].startswith("courses: GET /v1/courses/{course_id}")
    assert lines[2].startswith("  courses: ")  # the traced function, a child
    assert any(line.startswith("grading: GET /v1/grades") for line in lines)  # its parent is remote
    assert (bad.exit_code, unknown.exit_code) == (2, 1)
