"""The event bus on the memory transport: publish, subscribe, retries, dead letters, drain.

Time is a ManualClock: retry delays and redeliveries happen when the test
advances it, so "the retry really waits" is checked without sleeping.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import Any

import pytest

from lms_shared.errors import ConfigurationError
from lms_shared.events import (
    CloudEvent,
    EventBus,
    InvalidEvent,
    InvalidEventData,
    MemoryDeadLetterStore,
    MemoryTransport,
    Message,
    PublishFailed,
    RetryPolicy,
    TraceContext,
    UnknownEventType,
    current_event,
    current_trace_context,
    from_message,
    to_message,
    use_trace_context,
)
from lms_shared.resilience import Backoff
from lms_shared.testing import ManualClock
from lms_shared.testing._events import EventRecorder, memory_bus

from ._bus_models import CoursePublished, EnrollmentCreated, Unregistered

HALF = 0.5  # the jitter draw: every delay is half its ceiling


def course(title: str = "Rust") -> CoursePublished:
    return CoursePublished(course_id=uuid.uuid4(), title=title)


def enrollment() -> EnrollmentCreated:
    return EnrollmentCreated(enrollment_id=uuid.uuid4(), course_id=uuid.uuid4())


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def bus(clock: ManualClock) -> EventBus:
    made = memory_bus(
        clock=clock,
        retry=RetryPolicy(max_attempts=4, backoff=Backoff(initial=1.0, maximum=60.0)),
    )
    made.random = lambda: HALF
    made.publishes(CoursePublished, EnrollmentCreated)
    return made


def transport(bus: EventBus) -> MemoryTransport:
    assert isinstance(bus.transport, MemoryTransport)
    return bus.transport


# -- publishing -------------------------------------------------------------


async def test_publish_validates_and_sends_nothing_of_an_invalid_batch(bus: EventBus) -> None:
    await bus.start()
    try:
        bad: dict[str, Any] = {"course_id": "not a uuid", "title": 3}
        broken = CoursePublished.model_construct(**bad)
        with pytest.raises(InvalidEventData):
            await bus.publish([course(), broken])
        with pytest.raises(UnknownEventType, match="publishes"):
            await bus.publish([course(), Unregistered(value=1)])
        with pytest.raises(InvalidEvent):
            await bus.publish(course(), key="")  # an empty partition key
        with pytest.raises(InvalidEvent):
            await bus.publish("not an event")  # type: ignore[arg-type]
        assert transport(bus).published == []
    finally:
        await bus.stop()


async def test_publish_stamps_trace_correlation_tenant_version_key_and_deadline(
    bus: EventBus, clock: ManualClock
) -> None:
    await bus.start()
    try:
        parent = TraceContext("00-" + "a" * 32 + "-" + "b" * 16 + "-01", "vendor=1")
        with use_trace_context(parent):
            sent = await bus.publish(
                course(), key="course-1", tenant="acme", deadline=timedelta(minutes=5)
            )
        attributes = transport(bus).published[0].attributes
        assert attributes["traceparent"] == parent.traceparent
        assert attributes["tracestate"] == "vendor=1"
        assert attributes["schemaversion"] == "2"
        assert attributes["partitionkey"] == "course-1"
        assert attributes["tenant"] == "acme"
        assert attributes["source"] == "/tests"
        assert sent.deadline == clock.now() + timedelta(minutes=5)
        assert sent.correlationid  # a new operation: a fresh correlation id
        assert sent.causationid is None
        # outside any trace, a new root trace is started so the id is searchable
        loose = await bus.publish(course())
        assert loose.traceparent is not None
        assert "a" * 32 not in loose.traceparent
        assert loose.correlationid != sent.correlationid
    finally:
        await bus.stop()


async def test_a_batch_shares_one_correlation_id_and_arrives_in_order(bus: EventBus) -> None:
    seen: list[str] = []

    @bus.subscribe(CoursePublished, concurrency=1)
    async def on_course(event: CoursePublished) -> None:
        seen.append(event.title)

    recorder = EventRecorder(bus)
    await bus.start()
    try:
        sent = await bus.publish([course("a"), course("b"), course("c")])
        assert len({e.correlationid for e in sent}) == 1
        await recorder.wait_for(lambda o: len(o) == 3)
        assert seen == ["a", "b", "c"]
    finally:
        await bus.stop()


async def test_events_published_by_a_handler_continue_its_trace_and_name_their_cause(
    bus: EventBus,
) -> None:
    caused: list[CloudEvent] = []

    @bus.subscribe(CoursePublished)
    async def on_course(event: CoursePublished) -> None:
        context = current_event()
        assert context is not None
        assert context.attempt == 1
        assert context.group == "tests"
        trace = current_trace_context()
        assert trace is not None
        caused.append(await bus.publish(enrollment()))

    recorder = EventRecorder(bus)
    await bus.start()
    try:
        origin = await bus.publish(course(), tenant="acme", correlation_id="op-1")
        await recorder.settled(origin.id)
        [child] = caused
        assert child.causationid == origin.id
        assert child.correlationid == "op-1"
        assert child.tenant == "acme"
        assert origin.traceparent is not None
        assert child.traceparent is not None
        assert child.traceparent.split("-")[1] == origin.traceparent.split("-")[1]
        assert child.traceparent.split("-")[2] != origin.traceparent.split("-")[2]
        assert current_event() is None
    finally:
        await bus.stop()


async def test_publish_without_outbox_store_and_before_start_are_typed_errors(
    bus: EventBus,
) -> None:
    with pytest.raises(PublishFailed):
        await bus.publish(course())  # not started
    with pytest.raises(ConfigurationError, match="use_database"):
        await bus.publish(course(), outbox=object())


# -- subscribing ------------------------------------------------------------


async def test_fan_out_across_groups_and_ack_after_the_handler(bus: EventBus) -> None:
    got: dict[str, list[uuid.UUID]] = {"search": [], "mail": []}

    @bus.subscribe(CoursePublished, group="search")
    async def index(event: CoursePublished) -> None:
        got["search"].append(event.course_id)

    @bus.subscribe(CoursePublished, EnrollmentCreated, group="mail")
    async def mail(event: CoursePublished | EnrollmentCreated) -> None:
        got["mail"].append(event.course_id)

    recorder = EventRecorder(bus)
    await bus.start()
    try:
        published = course()
        outcomes = await recorder.deliver(published)
        assert sorted(o.group for o in outcomes) == ["mail", "search"]
        assert {o.result for o in outcomes} == {"handled"}
        assert got == {"search": [published.course_id], "mail": [published.course_id]}
        assert bus.groups == ("mail", "search")
        assert bus.group_types("mail") == tuple(
            sorted([EnrollmentCreated.event_type(), CoursePublished.event_type()])
        )
        assert [c.event_type() for c in bus.consumed_events] == sorted(
            [CoursePublished.event_type(), EnrollmentCreated.event_type()]
        )
    finally:
        await bus.stop()


def test_subscribe_refuses_ambiguous_or_malformed_handlers(bus: EventBus) -> None:
    @bus.subscribe(CoursePublished, group="search")
    async def first(event: CoursePublished) -> None: ...

    with pytest.raises(ValueError, match="already handles"):

        @bus.subscribe(CoursePublished, group="search")
        async def second(event: CoursePublished) -> None: ...

    with pytest.raises(TypeError, match="async"):

        @bus.subscribe(EnrollmentCreated)  # type: ignore[type-var]
        def blocking(event: EnrollmentCreated) -> None: ...

    with pytest.raises(TypeError, match="arguments"):

        @bus.subscribe(EnrollmentCreated)
        async def three(event: EnrollmentCreated, tx: Any, extra: Any) -> None: ...

    with pytest.raises(ValueError, match="at least one"):
        bus.subscribe()
    with pytest.raises(ValueError, match="group"):
        bus.subscribe(EnrollmentCreated, group="Not A Group")
    with pytest.raises(ValueError, match="concurrency"):
        bus.subscribe(EnrollmentCreated, concurrency=0)


async def test_a_handler_taking_tx_needs_an_inbox(clock: ManualClock) -> None:
    bus = memory_bus(clock=clock, inbox=False)

    @bus.subscribe(CoursePublished)
    async def on_course(event: CoursePublished, tx: Any) -> None: ...

    with pytest.raises(ConfigurationError, match="inbox"):
        await bus.start()
    assert not bus.started


async def test_the_concurrency_limit_holds(bus: EventBus) -> None:
    running = 0
    peak = 0
    release = asyncio.Event()

    @bus.subscribe(CoursePublished, concurrency=2)
    async def slow(event: CoursePublished) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await release.wait()
        running -= 1

    recorder = EventRecorder(bus)
    await bus.start()
    try:
        await bus.publish([course() for _ in range(5)])
        for _ in range(20):
            await asyncio.sleep(0)
        assert running == 2
        release.set()
        await recorder.wait_for(lambda o: len(o) == 5)
        assert peak == 2
    finally:
        await bus.stop()


async def test_upcasters_lift_old_versions_for_the_handler(bus: EventBus) -> None:
    got: list[CoursePublished] = []

    @bus.registry.upcaster(CoursePublished.event_type(), 1)
    def _rename(data: dict[str, Any]) -> dict[str, Any]:
        return {"course_id": data["course_id"], "title": data["name"]}

    @bus.subscribe(CoursePublished)
    async def on_course(event: CoursePublished) -> None:
        got.append(event)

    recorder = EventRecorder(bus)
    await bus.start()
    try:
        old = message(
            CoursePublished.event_type(),
            b'{"course_id": "%s", "name": "Go"}' % (str(uuid.uuid4()).encode()),
            schemaversion="1",
        )
        await bus.transport.publish([old])
        await recorder.settled(old.id)
        assert [e.title for e in got] == ["Go"]
    finally:
        await bus.stop()


# -- failures ---------------------------------------------------------------


def message(type: str, data: bytes = b"{}", **extra: str) -> Message:
    return Message(
        {
            "id": uuid.uuid4().hex,
            "source": "/elsewhere",
            "specversion": "1.0",
            "type": type,
            "datacontenttype": "application/json",
            "traceparent": "00-" + "c" * 32 + "-" + "d" * 16 + "-01",
            "schemaversion": "2",
            **extra,
        },
        data,
    )


async def test_a_failing_handler_is_retried_with_backoff_that_really_waits_then_dead_lettered(
    bus: EventBus, clock: ManualClock
) -> None:
    calls: list[int] = []
    others: list[str] = []

    @bus.subscribe(CoursePublished)
    async def broken(event: CoursePublished) -> None:
        context = current_event()
        assert context is not None
        calls.append(context.attempt)
        raise RuntimeError("the search index is down: postgresql://app:hunter2@db/search")

    @bus.subscribe(EnrollmentCreated)
    async def fine(event: EnrollmentCreated) -> None:
        others.append(str(event.enrollment_id))

    recorder = EventRecorder(bus)
    await bus.start()
    try:
        with use_trace_context(TraceContext("00-" + "e" * 32 + "-" + "f" * 16 + "-01")):
            sent = await bus.publish(course())
        # full jitter at HALF: ceilings 1, 2, 4 s -> delays 0.5, 1, 2 s
        for attempt, delay in ((1, 0.5), (2, 1.0), (3, 2.0)):
            await recorder.wait_for(lambda o, n=attempt: len(bus_retries(o)) == n)  # type: ignore[misc]
            assert bus_retries(recorder.outcomes)[-1].delay == delay
            await clock.advance(delay * 0.9)
            assert calls == list(range(1, attempt + 1))  # not before the delay
            # the consumer keeps serving other events meanwhile
            assert (await recorder.deliver(enrollment()))[-1].result == "handled"
            await clock.advance(delay * 0.2)
        await recorder.settled(sent.id)
        assert calls == [1, 2, 3, 4]
        assert recorder.for_event(sent.id)[-1].result == "dead"
        assert len(others) == 3
        dead_letters = bus.dead_letters
        assert isinstance(dead_letters, MemoryDeadLetterStore)
        [letter] = dead_letters.letters
        assert letter.reason == "handler-failed"
        assert letter.attempts == 4
        assert letter.group == "tests"
        assert letter.handler is not None
        assert letter.handler.endswith("broken")
        assert letter.trace_id == "e" * 32
        assert letter.event_id == sent.id
        assert "RuntimeError: the search index is down" in letter.error
        assert "hunter2" not in letter.error
        assert from_message(letter.message).id == sent.id  # the event, whole
    finally:
        await bus.stop()


def bus_retries(outcomes: list[Any]) -> list[Any]:
    return [o for o in outcomes if o.result == "retry"]


@pytest.mark.parametrize(
    ("data", "extra", "reason"),
    [
        (b"\xff\xfe garbage", {}, "invalid-event"),
        (b'{"course_id": 1}', {}, "invalid-event-data"),
        (b'{"course_id": "%s", "title": "x"}', {"schemaversion": "9"}, "unsupported-event-version"),
        (b"[" * 10_000 + b"]" * 10_000, {}, "invalid-event"),
        (b'{"course_id": "%s", "title": "x"}', {"schemaversion": "1"}, "unsupported-event-version"),
        (b"{}", {"time": "yesterday"}, "invalid-event"),
        (b"{}", {"specversion": "0.3"}, "invalid-event"),
    ],
    ids=[
        "garbage",
        "invalid-data",
        "newer-version",
        "deep-nesting",
        "no-upcaster",
        "bad-time",
        "old-spec",
    ],
)
async def test_unreadable_events_are_dead_lettered_with_the_reason(
    bus: EventBus, data: bytes, extra: dict[str, str], reason: str
) -> None:
    handled: list[CoursePublished] = []

    @bus.subscribe(CoursePublished)
    async def on_course(event: CoursePublished) -> None:
        handled.append(event)

    recorder = EventRecorder(bus)
    await bus.start()
    try:
        if b"%s" in data:
            data = data % str(uuid.uuid4()).encode()
        bad = message(CoursePublished.event_type(), data, **extra)
        await bus.transport.publish([bad])
        [outcome] = await recorder.settled(bad.id)
        assert (outcome.result, outcome.reason) == ("dead", reason)
        assert handled == []
        [letter] = await bus.dead_letters.list()
        assert letter.message == bad
        assert letter.attempts == 1
        assert letter.error
        # the consumer is still serving
        assert (await recorder.deliver(course()))[-1].result == "handled"
    finally:
        await bus.stop()


async def test_expired_events_are_dead_lettered_not_handled(
    bus: EventBus, clock: ManualClock
) -> None:
    handled: list[CoursePublished] = []

    @bus.subscribe(CoursePublished)
    async def on_course(event: CoursePublished) -> None:
        handled.append(event)

    recorder = EventRecorder(bus)
    await bus.start()
    try:
        late = message(
            CoursePublished.event_type(),
            b'{"course_id": "%s", "title": "x"}' % str(uuid.uuid4()).encode(),
            schemaversion="2",
            deadline=(clock.now() - timedelta(seconds=1)).isoformat(),
        )
        await bus.transport.publish([late])
        [outcome] = await recorder.settled(late.id)
        assert outcome.reason == "expired"
        [letter] = await bus.dead_letters.list()
        assert "deadline" in letter.error
        in_time = await recorder.deliver(course(), deadline=timedelta(seconds=30))
        assert in_time[-1].result == "handled"
        assert len(handled) == 1
    finally:
        await bus.stop()


async def test_an_event_redelivered_past_max_attempts_without_an_outcome_is_dead_lettered(
    clock: ManualClock,
) -> None:
    bus = memory_bus(clock=clock, retry=RetryPolicy(max_attempts=1))
    bus.publishes(CoursePublished)
    stuck = asyncio.Event()

    @bus.subscribe(CoursePublished, ack_wait=5.0)
    async def hangs(event: CoursePublished) -> None:
        await stuck.wait()

    recorder = EventRecorder(bus)
    await bus.start()
    try:
        sent = await bus.publish(course())
        for _ in range(10):
            await asyncio.sleep(0)
        await clock.advance(5.0)  # ack_wait: the transport delivers it again
        [outcome] = await recorder.wait_for(lambda o: len(o) == 1)
        assert (outcome.result, outcome.reason, outcome.attempt) == ("dead", "max-attempts", 2)
        assert outcome.event_id == sent.id
    finally:
        stuck.set()
        await bus.stop()


class FlakyStore(MemoryDeadLetterStore):
    def __init__(self) -> None:
        super().__init__()
        self.down = True

    async def add(self, letter: Any) -> None:
        if self.down:
            raise OSError("disk full")
        await super().add(letter)


async def test_when_the_dead_letter_store_fails_the_event_stays_with_the_broker(
    bus: EventBus, clock: ManualClock
) -> None:
    store = FlakyStore()
    bus.dead_letters = store

    @bus.subscribe(CoursePublished)
    async def on_course(event: CoursePublished) -> None: ...

    recorder = EventRecorder(bus)
    await bus.start()
    try:
        bad = message(CoursePublished.event_type(), b"not json")
        await bus.transport.publish([bad])
        [kept] = await recorder.wait_for(lambda o: len(o) == 1)
        assert kept.result == "kept"
        assert kept.delay == 0.5
        store.down = False
        await clock.advance(0.5)
        await recorder.settled(bad.id)
        assert [letter.event_id for letter in store.letters] == [bad.id]
    finally:
        await bus.stop()


async def test_duplicates_are_handled_once_through_the_inbox(bus: EventBus) -> None:
    calls: list[str] = []

    @bus.subscribe(CoursePublished)
    async def on_course(event: CoursePublished) -> None:
        calls.append(event.title)

    recorder = EventRecorder(bus)
    await bus.start()
    try:
        sent = await bus.publish(course())
        again = to_message(sent)
        await recorder.settled(sent.id)
        await bus.transport.publish([again, again])
        await recorder.wait_for(lambda o: len(o) == 3)
        assert [o.result for o in recorder.outcomes] == ["handled", "duplicate", "duplicate"]
        assert calls == ["Rust"]
    finally:
        await bus.stop()


# -- drain ------------------------------------------------------------------


async def test_stop_drains_running_handlers_before_the_transport_stops(bus: EventBus) -> None:
    started = asyncio.Event()
    release = asyncio.Event()
    finished: list[str] = []

    @bus.subscribe(CoursePublished)
    async def slow(event: CoursePublished) -> None:
        started.set()
        await release.wait()
        finished.append(event.title)

    recorder = EventRecorder(bus)
    await bus.start()
    await bus.publish(course("draining"))
    await started.wait()
    stopping = asyncio.create_task(bus.stop())
    for _ in range(10):
        await asyncio.sleep(0)
    assert not stopping.done()  # waiting for the handler
    release.set()
    await stopping
    assert finished == ["draining"]
    assert [o.result for o in recorder.outcomes] == ["handled"]
    assert not bus.started


async def test_ping_reports_the_transport(bus: EventBus) -> None:
    await bus.start()
    try:
        assert (await bus.ping()).startswith("memory; 0 group(s)")
        transport(bus).reachable = False
        with pytest.raises(Exception, match="unreachable"):
            await bus.ping()
    finally:
        await bus.stop()
