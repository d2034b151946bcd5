"""Traces across the bus: PRODUCER and CONSUMER spans, one trace from request to handlers.

A request publishes an event; the handler publishes another, handled in
turn. Every span is in the request's trace: the publish a child of the
server span, each handling a child of the publish that caused it, through
the transactional outbox too.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from opentelemetry.trace import SpanKind, StatusCode

from lms_shared import Service, create_service, load_settings
from lms_shared.events import EventBus, MemoryTransport, current_trace_context
from lms_shared.events.sql import create_event_tables
from lms_shared.observability import span
from lms_shared.resilience import Backoff
from lms_shared.testing import ManualClock, record_spans, service_client
from lms_shared.testing._events import EventRecorder

from ._bus_models import CoursePublished, EnrollmentCreated


def make(tmp_path: Path, **settings: Any) -> Service:
    return create_service(
        "courses",
        "1.0.0",
        settings=load_settings(events_url="memory://", state_dir=str(tmp_path), **settings),
    )


async def test_one_trace_runs_from_the_request_through_two_hops_of_events(
    tmp_path: Path,
) -> None:
    service = make(tmp_path)
    spans = record_spans(service)
    bus = service.events
    bus.publishes(CoursePublished, EnrollmentCreated)
    handled: list[str] = []

    @bus.subscribe(CoursePublished, group="enrollments")
    async def on_course(event: CoursePublished) -> None:
        with span("open enrollment"):
            await bus.publish(
                EnrollmentCreated(enrollment_id=uuid.uuid4(), course_id=event.course_id)
            )

    @bus.subscribe(EnrollmentCreated, group="grading")
    async def on_enrollment(event: EnrollmentCreated) -> None:
        handled.append(str(event.course_id))

    @service.router.post("/v1/courses/{course_id}/publish")
    async def publish(course_id: uuid.UUID) -> dict[str, str]:
        sent = await bus.publish(CoursePublished(course_id=course_id, title="Rust"))
        return {"traceparent": sent.traceparent or ""}

    recorder = EventRecorder(bus)
    course_id = uuid.uuid4()
    async with service_client(service) as client:
        response = await client.post(f"/v1/courses/{course_id}/publish")
        assert response.status_code == 200
        await recorder.wait_for(lambda _: handled == [str(course_id)])

    [server] = spans.named("POST /v1/courses/{course_id}/publish")
    [first] = spans.named("publish lms.test.course.published")
    [consume] = spans.named("process lms.test.course.published")
    [inner] = spans.named("open enrollment")
    [second] = spans.named("publish lms.test.enrollment.created")
    [last] = spans.named("process lms.test.enrollment.created")
    assert {s.trace_id for s in (server, first, consume, inner, second, last)} == {server.trace_id}
    assert first.parent_id == server.span_id
    assert consume.parent_id == first.span_id  # the consumer continues the producer
    assert inner.parent_id == consume.span_id
    assert second.parent_id == inner.span_id
    assert last.parent_id == second.span_id
    raw = {s.name: s for s in spans.raw()}
    assert raw[first.name].kind is SpanKind.PRODUCER
    assert raw[consume.name].kind is SpanKind.CONSUMER
    assert raw[consume.name].attributes is not None
    assert dict(raw[consume.name].attributes) == {
        "messaging.system": "memory",
        "messaging.operation.type": "process",
        "messaging.operation.name": "process",
        "messaging.destination.name": "lms.test.course.published",
        "messaging.consumer.group.name": "enrollments",
        "messaging.message.id": raw[consume.name].attributes["messaging.message.id"],
        "messaging.message.delivery_count": 1,
    }
    # the event carried the producer span's context, as a W3C traceparent
    flags = f"{int(raw[first.name].context.trace_flags):02x}"
    assert flags in {"01", "03"}  # sampled; 03: the trace id is random (level 2)
    assert response.json()["traceparent"] == f"00-{first.trace_id}-{first.span_id}-{flags}"


async def test_a_failing_handler_marks_its_consumer_span_and_each_attempt_has_one(
    tmp_path: Path,
) -> None:
    service = make(tmp_path)
    spans = record_spans(service)
    bus = service.events
    bus.publishes(CoursePublished)
    attempts: list[int] = []

    @bus.subscribe(CoursePublished, group="search", max_attempts=2, backoff=Backoff(initial=0.001))
    async def index(event: CoursePublished) -> None:
        attempts.append(1)
        raise RuntimeError("index is down")

    recorder = EventRecorder(bus)
    async with service_client(service):
        sent = await bus.publish(CoursePublished(course_id=uuid.uuid4(), title="Rust"))
        await recorder.settled(sent.id)

    consumed = [s for s in spans.raw() if s.name == "process lms.test.course.published"]
    assert len(consumed) == 2 == len(attempts)
    assert [s.attributes["messaging.message.delivery_count"] for s in consumed] == [1, 2]  # type: ignore[index]
    assert {s.status.status_code for s in consumed} == {StatusCode.ERROR}
    assert all(e.name == "exception" for s in consumed for e in s.events)
    [producer] = spans.named("publish lms.test.course.published")
    assert {f"{s.parent.span_id:016x}" for s in consumed if s.parent} == {producer.span_id}


async def test_the_outbox_keeps_the_producer_context_until_the_relay_publishes(
    tmp_path: Path,
) -> None:
    service = make(tmp_path)
    spans = record_spans(service)
    db = service.db  # started before the bus (and its relay)
    bus = service.events
    bus.use_database(db, inbox=False)
    bus.publishes(CoursePublished)
    seen: list[str | None] = []

    @bus.subscribe(CoursePublished, group="search")
    async def index(event: CoursePublished) -> None:
        context = current_trace_context()
        seen.append(context.traceparent if context else None)

    recorder = EventRecorder(bus)
    async with service_client(service):
        await create_event_tables(db)
        with span("enroll") as outer:
            async with db.transaction() as tx:
                sent = await bus.publish(
                    CoursePublished(course_id=uuid.uuid4(), title="Rust"), outbox=tx
                )
        await recorder.settled(sent.id)

    [producer] = spans.named("publish lms.test.course.published")
    [consumer] = spans.named("process lms.test.course.published")
    assert producer.parent_id == f"{outer.get_span_context().span_id:016x}"
    assert consumer.parent_id == producer.span_id
    assert sent.traceparent is not None
    flags = sent.traceparent[-2:]
    assert sent.traceparent == f"00-{producer.trace_id}-{producer.span_id}-{flags}"
    assert seen == [f"00-{consumer.trace_id}-{consumer.span_id}-{flags}"]


async def test_without_tracing_handlers_continue_the_event_trace_with_plain_contexts() -> None:
    clock = ManualClock()
    bus = EventBus(MemoryTransport(clock), source="/courses", clock=clock)
    bus.publishes(CoursePublished, EnrollmentCreated)
    got: list[str | None] = []

    @bus.subscribe(CoursePublished)
    async def on_course(event: CoursePublished) -> None:
        await bus.publish(EnrollmentCreated(enrollment_id=uuid.uuid4(), course_id=event.course_id))

    @bus.subscribe(EnrollmentCreated)
    async def on_enrollment(event: EnrollmentCreated) -> None:
        context = current_trace_context()
        got.append(context.traceparent if context else None)

    recorder = EventRecorder(bus)
    await bus.start()
    try:
        sent = await bus.publish(CoursePublished(course_id=uuid.uuid4(), title="Rust"))
        await recorder.wait_for(lambda _: len(got) == 1)
    finally:
        await bus.stop()
    assert sent.traceparent is not None
    trace_id = sent.traceparent.split("-")[1]
    assert got[0] is not None
    assert got[0].split("-")[1] == trace_id
    assert got[0] != sent.traceparent  # a new span id, the same trace
