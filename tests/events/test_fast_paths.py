"""The bus's fast paths: what it builds itself is checked once, what arrives is checked fully.

Publishing checks a batch's shared attributes once and makes ``id`` and
``time`` itself; reading builds each event from values checked once.
These tests pin that nothing the constructor would refuse gets through
either way, and that the fast forms equal the checked ones.
"""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from lms_shared.events import (
    CloudEvent,
    EventBus,
    EventRegistry,
    InvalidEvent,
    InvalidEventData,
    Message,
    _binary,
    current_trace_context,
)
from lms_shared.events._attributes import format_timestamp, parse_timestamp
from lms_shared.events._binary import from_message, to_message, to_messages
from lms_shared.events._envelope import unchecked_event
from lms_shared.events._nats_binding import message_from_nats, nats_headers
from lms_shared.events._redis import decode_entry, encode_entry
from lms_shared.events._schema import _new_id
from lms_shared.events._trace import trace_id
from lms_shared.testing import ManualClock
from lms_shared.testing._events import EventRecorder, memory_bus

from ._bus_models import CoursePublished

TRACEPARENT = "00-" + "c" * 32 + "-" + "d" * 16 + "-01"


def course(title: str = "Rust") -> CoursePublished:
    return CoursePublished(course_id=uuid.uuid4(), title=title)


def incoming(**extra: str) -> Message:
    """A message as another producer might send it (nothing checked but the basics)."""
    return Message(
        {
            "id": uuid.uuid4().hex,
            "source": "/elsewhere",
            "specversion": "1.0",
            "type": CoursePublished.event_type(),
            "datacontenttype": "application/json",
            "traceparent": TRACEPARENT,
            "schemaversion": "2",
            **extra,
        },
        b'{"course_id": "%s", "title": "x"}' % str(uuid.uuid4()).encode(),
    )


@pytest.fixture
def bus() -> EventBus:
    made = memory_bus(clock=ManualClock())
    made.publishes(CoursePublished)
    return made


# -- built without checks, equal to the checked ------------------------------


def test_an_unchecked_event_sets_every_field_as_the_constructor_does() -> None:
    values: dict[str, Any] = {
        "id": "e-1",
        "source": "/courses",
        "type": "lms.test.thing",
        "datacontenttype": "application/json",
        "dataschema": "https://example.com/s.json",
        "subject": "c-1",
        "time": datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        "extensions": {"tenant": "t1"},
        "data": {"a": 1},
    }
    made = unchecked_event(**values)
    checked = CloudEvent(**values)
    assert made == checked
    assert {f.name for f in dataclasses.fields(CloudEvent)} == {*values, "specversion"}
    for name in (f.name for f in dataclasses.fields(CloudEvent)):
        assert getattr(made, name) == getattr(checked, name)


def test_a_batch_encodes_as_one_by_one_with_a_fresh_id_and_time_each() -> None:
    clock = ManualClock()
    registry = EventRegistry([CoursePublished], clock=clock)
    events = [course("a"), course("b")]
    batch = registry.encode_all(events, source="/courses", subject="s", extensions={"tenant": "t1"})
    assert len({e.id for e in batch}) == 2
    for event, cloud_event in zip(events, batch, strict=True):
        alone = registry.encode(
            event,
            source="/courses",
            subject="s",
            extensions={"tenant": "t1"},
            id=cloud_event.id,
            time=cloud_event.time,
        )
        assert cloud_event == alone
        assert cloud_event.schemaversion == 2
        assert uuid.UUID(cloud_event.id).version == 4
    assert to_messages(batch) == [to_message(e) for e in batch]


def test_generated_ids_are_random_rfc_4122_version_4_uuids() -> None:
    ids = {_new_id() for _ in range(2000)}
    assert len(ids) == 2000
    for text in ids:
        parsed = uuid.UUID(text)
        assert (parsed.version, parsed.variant) == (4, uuid.RFC_4122)
        assert str(parsed) == text


@pytest.mark.parametrize(
    ("keywords", "reason"),
    [
        ({"source": "not a uri"}, "source"),
        ({"subject": "a\x00b"}, "subject"),
        ({"dataschema": "relative/only"}, "dataschema"),
        ({"extensions": {"traceparent": "nope"}}, "traceparent"),
        ({"extensions": {"Bad": "x"}}, "Bad"),
        ({"extensions": {"schemaversion": 3}}, "schemaversion"),
    ],
)
def test_shared_attributes_are_still_checked_and_nothing_of_the_batch_is_returned(
    keywords: dict[str, Any], reason: str
) -> None:
    registry = EventRegistry([CoursePublished])
    arguments: dict[str, Any] = {"source": "/courses", **keywords}
    with pytest.raises(InvalidEvent, match=reason):
        registry.encode_all([course(), course()], **arguments)
    with pytest.raises(InvalidEvent, match=reason):
        registry.encode(course(), **arguments)


def test_a_forged_event_in_a_batch_fails_the_batch() -> None:
    registry = EventRegistry([CoursePublished])
    forged = CoursePublished.model_construct(course_id="not-a-uuid", title="T")
    with pytest.raises(InvalidEventData):
        registry.encode_all([course(), forged], source="/courses")


def test_a_naive_clock_is_refused() -> None:
    class Naive(ManualClock):
        def now(self) -> datetime:
            return datetime(2026, 1, 1)

    registry = EventRegistry([CoursePublished], clock=Naive())
    with pytest.raises(InvalidEvent, match="time"):
        registry.encode_all([course()], source="/courses")


# -- read once, fully ----------------------------------------------------------


def test_a_message_reads_back_as_the_event_it_was_made_of() -> None:
    registry = EventRegistry([CoursePublished])
    event = registry.encode(
        course(),
        source="/courses",
        subject="c",
        dataschema="https://example.com/s",
        extensions={"traceparent": TRACEPARENT, "tracestate": "", "tenant": "t", "n": "7"},
    )
    read = from_message(to_message(event))
    assert read == event
    assert read == CloudEvent(**{f.name: getattr(read, f.name) for f in dataclasses.fields(read)})


@pytest.mark.parametrize(
    "extra",
    [
        {"source": "has space"},
        {"id": "a\x01b"},
        {"subject": "a\x85b"},
        {"datacontenttype": "json"},
        {"dataschema": "no-scheme"},
        {"time": "2026-02-30T00:00:00Z"},
        {"time": "2026-01-01T00:00:60Z"},
        {"traceparent": "00-" + "0" * 32 + "-" + "d" * 16 + "-01"},
        {"schemaversion": "01"},
        {"schemaversion": "0"},
        {"partitionkey": ""},
        {"deadline": "tomorrow"},
        {"custom": "x\x00"},
    ],
    ids=lambda extra: next(iter(extra)),
)
async def test_a_bad_attribute_from_the_broker_is_dead_lettered_with_its_reason(
    bus: EventBus, extra: dict[str, str]
) -> None:
    handled: list[CoursePublished] = []

    @bus.subscribe(CoursePublished)
    async def on_course(event: CoursePublished) -> None:
        handled.append(event)

    recorder = EventRecorder(bus)
    await bus.start()
    try:
        bad = incoming(**extra)
        await bus.transport.publish([bad])
        [outcome] = await recorder.settled(bad.id)
        assert (outcome.result, outcome.reason) == ("dead", "invalid-event")
        [letter] = await bus.dead_letters.list()
        assert f"'{next(iter(extra))}'" in letter.error  # the reason names the attribute
        assert handled == []
    finally:
        await bus.stop()


def test_timestamps_in_every_rfc_3339_form_read_as_before() -> None:
    assert parse_timestamp("2026-12-07T16:48:33.4Z") == datetime(
        2026, 12, 7, 16, 48, 33, 400000, tzinfo=UTC
    )
    assert parse_timestamp("2026-12-07t16:48:33z") == datetime(2026, 12, 7, 16, 48, 33, tzinfo=UTC)
    assert parse_timestamp("2026-12-07T16:48:33.1234567Z").microsecond == 123456
    assert parse_timestamp("2026-12-07T16:48:33+05:30").utcoffset() == timedelta(
        hours=5, minutes=30
    )
    for bad in ("2026-12-07 16:48:33Z", "2026-12-07T16:48:33", "2026-13-01T00:00:00Z"):
        with pytest.raises(InvalidEvent):
            parse_timestamp(bad)
    east = datetime(2026, 1, 1, 5, 0, 0, 7, tzinfo=timezone(timedelta(hours=5)))
    assert format_timestamp(east) == "2026-01-01T00:00:00.000007Z"
    assert format_timestamp(datetime(2026, 1, 1, tzinfo=UTC)) == "2026-01-01T00:00:00Z"


@pytest.mark.parametrize(
    "value",
    ["plain", " lead", "trail ", "a | b", "a|b", "50%", 'say "hi"', "naïve", "|", " | ", ""],
)
def test_nats_headers_that_need_escaping_are_escaped_and_read_back(value: str) -> None:
    attributes = {
        "id": "1",
        "source": "/s",
        "specversion": "1.0",
        "type": "t",
        "subject": value or "x",
        "tenant": value,
    }
    message = Message(attributes, b"")
    headers = nats_headers(message)
    assert all(v.isascii() and v.isprintable() for v in headers.values())
    assert all(v == v.strip() for v in headers.values())
    assert message_from_nats(headers, b"") == message


def test_nats_header_names_in_other_cases_and_twice_are_read_as_before() -> None:
    headers = {"CE-ID": "1", "ce-source": "/s", "ce-specversion": "1.0", "ce-type": "t"}
    assert message_from_nats(headers, b"").attributes["id"] == "1"
    with pytest.raises(InvalidEvent, match="more than once"):
        message_from_nats({**headers, "ce-id": "2"}, b"")


def test_redis_entries_keep_their_size_bound_and_read_back() -> None:
    from lms_shared.events import EnvelopeLimits

    message = Message(
        {"id": "1", "source": "/s", "specversion": "1.0", "type": "t", "tenant": "ü" * 10},
        b"x" * 10,
    )
    exact = 10 + sum(len(k) + len(v.encode()) for k, v in message.attributes.items())
    fields = encode_entry(message, EnvelopeLimits(max_bytes=exact))
    assert decode_entry("1-1", fields, EnvelopeLimits(max_bytes=exact))[0] == message
    with pytest.raises(InvalidEvent, match="larger"):
        encode_entry(message, EnvelopeLimits(max_bytes=exact - 1))
    with pytest.raises(InvalidEvent, match="larger"):
        decode_entry("1-1", fields, EnvelopeLimits(max_bytes=exact - 1))


def test_messages_still_refuse_bad_names_and_values_in_order() -> None:
    base: dict[str, Any] = {"id": "1", "source": "/s", "specversion": "1.0", "type": "t"}
    with pytest.raises(InvalidEvent, match="lower-case"):
        Message({**base, "Bad": "x"})
    with pytest.raises(InvalidEvent, match="not a string"):
        Message({**base, "tenant": 1})
    with pytest.raises(InvalidEvent, match="'tenant' is not a string"):
        Message({**base, "tenant": 1, "Bad": "x"})


# -- the handler's trace context, made when asked for ---------------------------


async def test_a_handler_sees_one_child_context_of_the_events_trace(bus: EventBus) -> None:
    seen: list[Any] = []

    @bus.subscribe(CoursePublished)
    async def on_course(event: CoursePublished) -> None:
        seen.append((current_trace_context(), current_trace_context()))

    recorder = EventRecorder(bus)
    await bus.start()
    try:
        sent = incoming()
        await bus.transport.publish([sent])
        await recorder.settled(sent.id)
    finally:
        await bus.stop()
    [(first, second)] = seen
    assert first is second
    assert first is not None
    assert trace_id(first.traceparent) == "c" * 32
    assert first.traceparent != TRACEPARENT
    assert current_trace_context() is None


def _attributes(**extra: str) -> dict[str, str]:
    return {
        "id": str(uuid.uuid4()),
        "source": "/courses",
        "specversion": "1.0",
        "type": "lms.test.course.published",
        "datacontenttype": "application/json",
        "traceparent": TRACEPARENT,
        "schemaversion": "2",
        **extra,
    }


def test_a_remembered_check_answers_as_the_check_and_a_failed_one_is_never_remembered(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_binary, "_REMEMBERED", {})
    first = _binary.from_binary(_attributes(), b'{"a": 1}')
    again = _binary.from_binary(_attributes(), b'{"a": 1}')  # from memory, the same values
    assert (again.source, again.type, again.schemaversion) == ("/courses", first.type, 2)
    assert again.extensions == first.extensions
    for _ in range(2):  # refused every time, with the check's own reason
        with pytest.raises(InvalidEvent, match="schemaversion"):
            _binary.from_binary(_attributes(schemaversion="two"), b"{}")
        with pytest.raises(InvalidEvent, match="source"):
            _binary.from_binary(_attributes(source="bad uri\n"), b"{}")
    assert all(value != "two" for _, value in _binary._REMEMBERED)


def test_what_the_checks_remember_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_binary, "_REMEMBERED", {})
    for n in range(3 * _binary.REMEMBER_VALUES):
        _binary.from_binary(_attributes(correlationid=f"c-{n}"), b"{}")
        assert len(_binary._REMEMBERED) <= _binary.REMEMBER_VALUES
    long = "x" * (_binary.REMEMBER_LENGTH + 1)
    _binary.from_binary(_attributes(correlationid=long), b"{}")
    assert ("correlationid", long) not in _binary._REMEMBERED
