"""The bus on real transports: the embedded log and NATS JetStream (and memory, for reference).

Real time, short backoffs, waits bounded by the recorder: retries until
max attempts then a dead letter, the consumer still serving, unreadable
events dead-lettered, duplicates absorbed, a replay after the fix.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from lms_shared.clock import SystemClock
from lms_shared.events import (
    DeadLetterQuery,
    EventBus,
    MemoryDeadLetterStore,
    MemoryInbox,
    Message,
    RetryPolicy,
    to_message,
)
from lms_shared.resilience import Backoff
from lms_shared.testing._events import EventRecorder

from ._bus_models import CoursePublished, EnrollmentCreated
from .conformance._support import Backend

BACKENDS = ["memory", "log", "nats"]


@pytest.fixture(params=BACKENDS)
async def bus(request: pytest.FixtureRequest) -> AsyncIterator[EventBus]:
    namespace = f"b{uuid.uuid4().hex[:12]}"
    async with Backend(f"_{request.param}").transport(namespace) as transport:
        made = EventBus(
            transport,
            source="/tests",
            group=f"g{namespace}",
            clock=SystemClock(),
            retry=RetryPolicy(max_attempts=3, backoff=Backoff(initial=0.05, maximum=0.2)),
            inbox=MemoryInbox(),
            dead_letters=MemoryDeadLetterStore(),
        )
        made.publishes(CoursePublished, EnrollmentCreated)
        yield made
        await made.stop()


def course(title: str = "Rust") -> CoursePublished:
    return CoursePublished(course_id=uuid.uuid4(), title=title)


async def test_a_failing_handler_is_dead_lettered_after_max_attempts(bus: EventBus) -> None:
    attempts: list[int] = []
    fine: list[str] = []
    fixed = {"yes": False}

    @bus.subscribe(CoursePublished)
    async def broken(event: CoursePublished) -> None:
        attempts.append(1)
        if not fixed["yes"]:
            raise RuntimeError("bug")

    @bus.subscribe(EnrollmentCreated)
    async def works(event: EnrollmentCreated) -> None:
        fine.append(str(event.enrollment_id))

    recorder = EventRecorder(bus, timeout=30)
    await bus.start()
    sent = await bus.publish(course())
    other = await bus.publish(EnrollmentCreated(enrollment_id=uuid.uuid4(), course_id=uuid.uuid4()))
    outcomes = await recorder.settled(sent.id)
    await recorder.settled(other.id)
    assert [o.result for o in outcomes] == ["retry", "retry", "dead"]
    assert [o.attempt for o in outcomes] == [1, 2, 3]
    assert len(attempts) == 3
    assert len(fine) == 1
    [letter] = await bus.dead_letters.list()
    assert (letter.reason, letter.attempts, letter.event_id) == ("handler-failed", 3, sent.id)

    fixed["yes"] = True
    report = await bus.replay(DeadLetterQuery(group=bus.group))
    assert report.count == 1
    await recorder.wait_for(
        lambda o: any(x.event_id == sent.id and x.result == "handled" for x in o)
    )
    assert await bus.dead_letters.count() == 0


async def test_unreadable_events_and_duplicates(bus: EventBus) -> None:
    handled: list[str] = []

    @bus.subscribe(CoursePublished)
    async def on_course(event: CoursePublished) -> None:
        handled.append(event.title)

    recorder = EventRecorder(bus, timeout=30)
    await bus.start()
    garbage = Message(
        {
            "id": uuid.uuid4().hex,
            "source": "/elsewhere",
            "specversion": "1.0",
            "type": CoursePublished.event_type(),
            "datacontenttype": "application/json",
            "schemaversion": "2",
        },
        b"\x00 not json",
    )
    await bus.transport.publish([garbage])
    [dead] = await recorder.settled(garbage.id)
    assert (dead.result, dead.reason) == ("dead", "invalid-event")

    sent = await bus.publish(course("once"))
    await recorder.settled(sent.id)
    await bus.transport.publish([to_message(sent)])
    await recorder.wait_for(
        lambda o: [x.result for x in o if x.event_id == sent.id][-1:] == ["duplicate"]
    )
    assert handled == ["once"]
