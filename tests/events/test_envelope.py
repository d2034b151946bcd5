"""The CloudEvent value and the CloudEvents 1.0 type system."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from lms_shared.errors import BadRequest, LmsError
from lms_shared.events import (
    NO_DATA,
    CloudEvent,
    EnvelopeLimits,
    InvalidEvent,
    format_timestamp,
    is_json_content_type,
    parse_timestamp,
)

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def event(**changes: Any) -> CloudEvent:
    fields: dict[str, Any] = {"id": "e-1", "source": "/courses", "type": "lms.course.published"}
    return CloudEvent(**{**fields, **changes})


def test_the_platform_extensions_are_typed() -> None:
    deadline = datetime(2026, 3, 1, 12, tzinfo=UTC)
    made = event(
        extensions={
            "traceparent": TRACEPARENT,
            "tracestate": "congo=t61rcWkgMzE",
            "correlationid": "op-7",
            "causationid": "e-0",
            "tenant": "school-1",
            "schemaversion": "2",  # canonical strings are accepted and typed
            "deadline": "2026-03-01T13:00:00+01:00",
            "partitionkey": "course-42",
        }
    )
    assert made.traceparent == TRACEPARENT
    assert made.tracestate == "congo=t61rcWkgMzE"
    assert (made.correlationid, made.causationid, made.tenant) == ("op-7", "e-0", "school-1")
    assert made.schemaversion == 2
    assert made.deadline == deadline
    assert made.partitionkey == "course-42"
    assert made.attributes()["deadline"] == "2026-03-01T12:00:00Z"
    plain = event()
    assert (plain.traceparent, plain.schemaversion, plain.deadline) == (None, None, None)
    assert not plain.has_data
    assert event(data=None).has_data  # an explicit JSON null payload


def test_an_event_is_frozen_and_its_extensions_read_only() -> None:
    made = event(extensions={"tenant": "t"})
    with pytest.raises(dataclasses.FrozenInstanceError):
        made.id = "other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        made.extensions["tenant"] = "x"  # type: ignore[index]
    assert dataclasses.replace(made, subject="s").subject == "s"


def test_attributes_are_canonical_strings() -> None:
    made = event(
        time=datetime(2026, 1, 2, 3, 4, 5, 120000, tzinfo=timezone(timedelta(hours=2))),
        extensions={
            "flag": True,
            "count": -5,
            "blob": b"\x00\xff",
            "at": datetime(2026, 1, 1, tzinfo=UTC),
        },
    )
    attributes = made.attributes()
    assert attributes["time"] == "2026-01-02T01:04:05.120000Z"
    assert attributes["flag"] == "true"
    assert attributes["count"] == "-5"
    assert attributes["blob"] == "AP8="
    assert attributes["at"] == "2026-01-01T00:00:00Z"
    assert attributes["specversion"] == "1.0"


def test_long_extension_names_are_only_a_should() -> None:
    name = "a" * 30
    assert event(extensions={name: "x"}).extensions[name] == "x"


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"id": ""}, "'id' must not be empty"),
        ({"type": 7}, "'type' must be a string"),
        ({"source": ""}, "'source'"),
        ({"source": "has space"}, "URI-reference"),
        ({"specversion": "0.3"}, "specversion"),
        ({"dataschema": "/relative"}, "absolute URI"),
        ({"dataschema": "https://x.example/s#frag"}, "absolute URI"),
        ({"datacontenttype": "json"}, "media type"),
        ({"subject": ""}, "'subject'"),
        ({"subject": "line\nbreak"}, r"U\+000A"),
        ({"subject": "nul\x00"}, r"U\+0000"),
        ({"subject": "c1 \x85"}, r"U\+0085"),
        ({"subject": "lone \ud800"}, r"U\+D800"),
        ({"subject": "non \ufffe"}, r"U\+FFFE"),
        ({"subject": "plane \U0010ffff"}, r"U\+10FFFF"),
        ({"time": datetime(2026, 1, 1)}, "timezone-aware"),
        ({"time": "2026-01-01T00:00:00Z"}, "timezone-aware"),
        ({"extensions": {"Upper": "x"}}, "lower-case"),
        ({"extensions": {"with-dash": "x"}}, "lower-case"),
        ({"extensions": {"data": "x"}}, "reserved"),
        ({"extensions": {"subject": "x"}}, "core attribute"),
        ({"extensions": {"n": 2**31}}, "32-bit"),
        ({"extensions": {"n": -(2**31) - 1}}, "32-bit"),
        ({"extensions": {"n": 1.5}}, "boolean, integer"),
        ({"extensions": {"n": [1]}}, "boolean, integer"),
        ({"extensions": {"schemaversion": True}}, "integer"),
        ({"extensions": {"schemaversion": 0}}, "at least 1"),
        ({"extensions": {"schemaversion": "02"}}, "integer"),
        ({"extensions": {"deadline": "tomorrow"}}, "RFC 3339"),
        ({"extensions": {"traceparent": "00-abc-def-01"}}, "traceparent"),
        ({"extensions": {"traceparent": TRACEPARENT.replace("0af7", "0AF7")}}, "traceparent"),
        ({"extensions": {"traceparent": "ff" + TRACEPARENT[2:]}}, "traceparent"),
        ({"extensions": {"traceparent": TRACEPARENT + "x"}}, "traceparent"),
        ({"extensions": {"tracestate": "\u00e9"}}, "tracestate"),
        ({"extensions": {"partitionkey": ""}}, "'partitionkey' must not be empty"),
        ({"extensions": {"tenant": 5}}, "'tenant' must be a string"),
        ({"datacontenttype": "application/xml", "data": {"a": 1}}, "bytes or str"),
    ],
)
def test_invalid_attributes_are_refused(changes: dict[str, Any], reason: str) -> None:
    with pytest.raises(InvalidEvent, match=reason) as caught:
        event(**changes)
    assert caught.value.reason


def test_a_future_traceparent_version_may_carry_more_fields() -> None:
    assert event(extensions={"traceparent": "01" + TRACEPARENT[2:] + "-extra"}).traceparent


def test_invalid_event_is_a_400_problem() -> None:
    error = InvalidEvent("why")
    assert isinstance(error, BadRequest)
    assert isinstance(error, LmsError)
    assert error.status == 400
    assert error.problem_code.slug == "invalid-event"
    assert (error.reason, error.detail) == ("why", "why")


def test_data_defaults_to_absent() -> None:
    assert event().data is NO_DATA
    assert repr(NO_DATA) == "NO_DATA"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-01-02T03:04:05Z", datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("2026-01-02t03:04:05z", datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("2026-01-02T03:04:05.5+01:30", datetime(2026, 1, 2, 1, 34, 5, 500000, tzinfo=UTC)),
        ("2026-01-02T03:04:05.123456789-00:00", datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)),
    ],
)
def test_rfc3339_timestamps_are_read(text: str, expected: datetime) -> None:
    assert parse_timestamp(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "2026-01-02T03:04:05",  # no offset
        "2026-01-02",
        "2026-01-02 03:04:05Z",
        "2026-W01-1T00:00:00Z",
        "2026-13-01T00:00:00Z",
        "2026-02-30T00:00:00Z",
        "2026-01-02T03:04:60Z",  # a leap second
        "2026-01-02T03:04:05+24:00",
        "2026-01-02T03:04:05.Z",
        "",
    ],
)
def test_other_timestamps_are_refused(text: str) -> None:
    with pytest.raises(InvalidEvent):
        parse_timestamp(text)


def test_timestamps_are_written_in_utc() -> None:
    moment = datetime(2026, 5, 6, 7, 8, 9, tzinfo=timezone(timedelta(hours=-5)))
    assert format_timestamp(moment) == "2026-05-06T12:08:09Z"
    assert parse_timestamp(format_timestamp(moment)) == moment


@pytest.mark.parametrize(
    ("content_type", "is_json"),
    [
        (None, True),
        ("application/json", True),
        ("application/json; charset=utf-8", True),
        ("application/vnd.lms+json", True),
        ("TEXT/JSON", True),
        ("application/xml", False),
        ("application/jsonx", False),
        ("text/plain", False),
    ],
)
def test_json_content_types(content_type: str | None, is_json: bool) -> None:
    assert is_json_content_type(content_type) is is_json


@pytest.mark.parametrize(
    "source",
    [
        "https://lms.example/courses",
        "urn:uuid:6e8bc430-9c3a-11d9-9669-0800200c9a66",
        "mailto:ops@lms.example",
        "/cloudevents/spec/pull/123",
        "1-555-123-4567",
        "//host:8080/p?q=1#f",
        "http://[::1]:80/",
    ],
)
def test_uri_references_of_the_spec_are_sources(source: str) -> None:
    assert event(source=source).source == source


@pytest.mark.parametrize(
    "kwargs", [{"max_bytes": 0}, {"max_depth": 0}, {"max_depth": 2000}, {"max_batch_events": 0}]
)
def test_limits_are_checked(kwargs: dict[str, int]) -> None:
    with pytest.raises(ValueError, match="max_"):
        EnvelopeLimits(**kwargs)
