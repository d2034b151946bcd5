"""Typed events, the registry (encode, decode, upcasters), schema compatibility, AsyncAPI."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
import pydantic
import pytest

from lms_shared.events import (
    CloudEvent,
    Event,
    EventRegistry,
    EventSchemaError,
    InvalidEvent,
    InvalidEventData,
    UnknownEventType,
    UnsupportedEventVersion,
    asyncapi,
    compare_event_schemas,
    from_message,
    to_message,
)
from lms_shared.testing import ManualClock

COURSE = uuid.UUID("6e8bc430-9c3a-11d9-9669-0800200c9a66")


class Lesson(pydantic.BaseModel):
    title: str


class CoursePublished(Event, type="lms.course.published", version=2):
    """A course became visible to learners."""

    course_id: uuid.UUID
    title: str
    lessons: list[Lesson] = []


class EnrollmentCreated(Event, type="lms.enrollment.created"):
    enrollment_id: uuid.UUID
    lessons: list[Lesson] = []


class CourseEvent(Event):
    """An abstract base: no type."""

    course_id: uuid.UUID


def registry(clock: ManualClock | None = None) -> EventRegistry:
    made = EventRegistry([CoursePublished, EnrollmentCreated], clock=clock or ManualClock())

    @made.upcaster("lms.course.published", 1)
    def _rename(data: dict[str, Any]) -> dict[str, Any]:
        return {"course_id": data["course_id"], "title": data["name"]}

    return made


def published(title: str = "Algebra") -> CoursePublished:
    return CoursePublished(course_id=COURSE, title=title)


def test_class_keywords_give_type_and_version() -> None:
    assert CoursePublished.event_type() == "lms.course.published"
    assert CoursePublished.event_version() == 2
    assert EnrollmentCreated.event_version() == 1
    with pytest.raises(TypeError, match="abstract"):
        CourseEvent.event_type()


def test_events_are_frozen_and_strict() -> None:
    event = published()
    with pytest.raises(pydantic.ValidationError):
        event.title = "other"  # type: ignore[misc]
    with pytest.raises(pydantic.ValidationError, match="Extra inputs"):
        CoursePublished(course_id=COURSE, title="x", typo=1)  # type: ignore[call-arg]


def test_bad_class_keywords_are_refused() -> None:
    with pytest.raises(TypeError, match="version= needs type="):

        class _NoType(Event, version=2):
            pass

    with pytest.raises(TypeError, match="dotted lower-case"):

        class _BadType(Event, type="Course Published"):
            pass


def test_encode_makes_a_cloudevent_on_the_clock() -> None:
    clock = ManualClock(datetime(2026, 2, 3, 4, 5, 6, tzinfo=UTC))
    cloud = registry(clock).encode(
        published(),
        source="/courses",
        subject=f"courses/{COURSE}",
        extensions={"correlationid": "op-1", "tenant": "school-1"},
    )
    assert cloud.type == "lms.course.published"
    assert cloud.schemaversion == 2
    assert cloud.time == clock.now()
    assert cloud.datacontenttype == "application/json"
    assert cloud.data == {"course_id": str(COURSE), "title": "Algebra", "lessons": []}
    assert (cloud.correlationid, cloud.tenant) == ("op-1", "school-1")
    assert uuid.UUID(cloud.id)
    fixed = registry().encode(published(), source="/c", id="e-1", time=clock.now())
    assert fixed.id == "e-1"


def test_decode_roundtrips_through_a_message() -> None:
    made = registry()
    event = CoursePublished(course_id=COURSE, title="A", lessons=[Lesson(title="L1")])
    cloud = from_message(to_message(made.encode(event, source="/courses")))
    assert made.decode(cloud) == event


def test_older_versions_are_lifted_by_upcasters() -> None:
    old = CloudEvent(
        id="1",
        source="/courses",
        type="lms.course.published",
        extensions={"schemaversion": 1},
        data={"course_id": str(COURSE), "name": "Old title"},
    )
    assert registry().decode(old) == published("Old title")


def test_unknown_top_level_fields_are_ignored_by_consumers() -> None:
    cloud = CloudEvent(
        id="1",
        source="/s",
        type="lms.course.published",
        extensions={"schemaversion": 2},
        data={"course_id": str(COURSE), "title": "T", "added_later": True},
    )
    assert registry().decode(cloud) == published("T")


def cloud_event(**changes: Any) -> CloudEvent:
    fields: dict[str, Any] = {
        "id": "1",
        "source": "/s",
        "type": "lms.course.published",
        "extensions": {"schemaversion": 2},
        "data": {"course_id": str(COURSE), "title": "T"},
    }
    return CloudEvent(**{**fields, **changes})


@pytest.mark.parametrize(
    ("changes", "error", "reason"),
    [
        ({"type": "lms.course.deleted"}, UnknownEventType, "not known"),
        ({"extensions": {"schemaversion": 3}}, UnsupportedEventVersion, "newer"),
        ({"data": {"course_id": "nope", "title": "T"}}, InvalidEventData, "course_id"),
        ({"data": {"title": "T"}}, InvalidEventData, "Field required"),
        ({"data": [1, 2]}, InvalidEventData, "JSON object"),
        ({"data": b"{not json"}, InvalidEventData, "malformed JSON"),
        ({"datacontenttype": "application/xml", "data": b"<x/>"}, InvalidEventData, "JSON"),
        (
            {"extensions": {"schemaversion": 1}, "data": {"course_id": "x"}},
            InvalidEventData,
            "upcaster failed",
        ),
    ],
)
def test_decode_failures_are_typed(
    changes: dict[str, Any], error: type[EventSchemaError], reason: str
) -> None:
    with pytest.raises(error, match=reason) as caught:
        registry().decode(cloud_event(**changes))
    assert isinstance(caught.value, EventSchemaError)
    assert caught.value.type == cloud_event(**changes).type
    assert caught.value.reason


def test_json_bytes_data_is_decoded_within_bounds() -> None:
    body = orjson.dumps({"course_id": str(COURSE), "title": "T"})
    assert registry().decode(cloud_event(data=body)) == published("T")
    with pytest.raises(InvalidEventData):
        registry().decode(cloud_event(data=b"[" * 10_000 + b"]" * 10_000))


def test_validation_errors_carry_locations_without_input() -> None:
    with pytest.raises(InvalidEventData) as caught:
        registry().decode(cloud_event(data={"course_id": "secret-value", "title": 5}))
    errors = caught.value.errors
    assert {tuple(e["loc"]) for e in errors} == {("course_id",), ("title",)}
    assert "secret-value" not in str(errors)
    assert caught.value.status == 422


def test_a_missing_upcaster_step_is_unsupported() -> None:
    made = EventRegistry([CoursePublished])
    with pytest.raises(UnsupportedEventVersion, match="no upcaster from v1"):
        made.decode(cloud_event(extensions={"schemaversion": 1}))


def test_a_missing_schemaversion_means_version_one() -> None:
    plain = CloudEvent(
        id="1", source="/s", type="lms.enrollment.created", data={"enrollment_id": str(COURSE)}
    )
    assert registry().decode(plain) == EnrollmentCreated(enrollment_id=COURSE)


def test_publish_side_errors_send_nothing() -> None:
    made = registry()
    unknown = CourseEvent(course_id=COURSE)
    with pytest.raises(UnknownEventType):
        made.encode(unknown, source="/s")
    forged = CoursePublished.model_construct(course_id="not-a-uuid", title="T")
    with pytest.raises(InvalidEventData):
        made.encode(forged, source="/s")
    with pytest.raises(InvalidEvent, match="schemaversion"):
        made.encode(published(), source="/s", extensions={"schemaversion": 9})
    with pytest.raises(InvalidEvent, match="URI-reference"):
        made.encode(published(), source="not a uri")


def test_registry_refuses_abstract_and_duplicate_types() -> None:
    class Other(Event, type="lms.course.published"):
        pass

    with pytest.raises(ValueError, match="abstract"):
        EventRegistry([CourseEvent])
    with pytest.raises(ValueError, match="already registered"):
        EventRegistry([CoursePublished, Other])
    with pytest.raises(ValueError, match="not an Event"):
        EventRegistry([Lesson])  # type: ignore[list-item]
    made = registry()
    assert made.types == ("lms.course.published", "lms.enrollment.created")
    assert "lms.course.published" in made
    with pytest.raises(ValueError, match="upcaster"):
        made.add_upcaster("lms.course.published", 2, lambda d: d)


def test_json_schemas_are_exported_by_type() -> None:
    schemas = registry().json_schemas()
    course = schemas["lms.course.published"]
    assert course["x-schema-name"] == "lms.course.published"
    assert course["x-schema-version"] == 2
    assert course["additionalProperties"] is False
    assert set(course["required"]) == {"course_id", "title"}


def _export(*fields: tuple[str, Any], version: int = 1) -> dict[str, dict[str, Any]]:
    annotations = dict(fields)
    namespace: dict[str, Any] = {"__annotations__": annotations}
    for name, kind in fields:
        if isinstance(kind, str) and kind.endswith("| None"):
            namespace[name] = None
    model = type("Thing", (Event,), namespace, type="lms.thing.happened", version=version)
    return EventRegistry([model]).json_schemas()


def test_adding_an_optional_field_is_compatible() -> None:
    old = _export(("name", "str"))
    new = _export(("name", "str"), ("note", "str | None"))
    assert compare_event_schemas(old, new) == []


@pytest.mark.parametrize(
    ("new_fields", "message"),
    [
        ((), "field removed"),
        ((("name", "int"),), "type string no longer accepted"),
        ((("name", "str"), ("extra", "str")), "new required field"),
    ],
)
def test_breaking_changes_are_reported(
    new_fields: tuple[tuple[str, str], ...], message: str
) -> None:
    old = _export(("name", "str"), ("note", "str | None"))
    if new_fields == ():
        new = _export(("note", "str | None"))
    else:
        new = _export(*new_fields, ("note", "str | None"))
    changes = compare_event_schemas(old, new)
    assert any(message in change.message for change in changes), changes
    assert not any(change.allowed for change in changes)


def test_making_a_field_required_breaks_and_a_version_bump_allows_it() -> None:
    old = _export(("name", "str"), ("note", "str | None"))
    new = _export(("name", "str"), ("note", "str"))
    changes = compare_event_schemas(old, new)
    assert any("became required" in c.message for c in changes)
    bumped = _export(("name", "str"), ("note", "str"), version=2)
    assert all(c.allowed for c in compare_event_schemas(old, bumped))


def _resolve(document: dict[str, Any], ref: str) -> Any:
    node: Any = document
    for part in ref.removeprefix("#/").split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [r for value in node.values() for r in _refs(value)]
    if isinstance(node, list):
        return [r for value in node for r in _refs(value)]
    return []


def test_asyncapi_document_describes_channels_messages_and_operations() -> None:
    document = asyncapi(
        "courses",
        version="1.4.0",
        publishes=[CoursePublished],
        consumes=[EnrollmentCreated],
        description="Course catalogue",
    )
    assert document["asyncapi"] == "3.0.0"
    assert document["info"] == {
        "title": "courses",
        "version": "1.4.0",
        "description": "Course catalogue",
    }
    assert set(document["channels"]) == {"lms.course.published", "lms.enrollment.created"}
    assert document["channels"]["lms.course.published"]["address"] == "lms.course.published"
    operations = document["operations"]
    assert operations["send.lms.course.published"]["action"] == "send"
    assert operations["receive.lms.enrollment.created"]["action"] == "receive"
    message = document["components"]["messages"]["lms.course.published"]
    assert message["summary"] == "A course became visible to learners."
    assert message["x-schema-version"] == 2
    payload = _resolve(document, message["payload"]["$ref"])
    assert set(payload["properties"]) == {"course_id", "title", "lessons"}
    refs = _refs(document)
    assert refs, "the document links its parts"
    for ref in refs:
        assert ref.startswith("#/"), ref
        _resolve(document, ref)  # every reference resolves inside the document
    # the nested model shared by both events is defined once
    assert list(document["components"]["schemas"]).count("Lesson") == 1
    orjson.dumps(document)


def test_asyncapi_refuses_abstract_events() -> None:
    with pytest.raises(ValueError, match="abstract"):
        asyncapi("courses", publishes=[CourseEvent])
