"""The house style of every model: shapes, sizes, datetimes, the annotated types."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Annotated, Any
from uuid import uuid4

import pytest
from pydantic import AnyUrl, ValidationError

from lms_shared.models import (
    DEFAULT_MAX_ITEMS,
    DEFAULT_MAX_LENGTH,
    CourseCreate,
    Email,
    LmsModel,
    LmsRecord,
    LocaleCode,
    ModelValidationError,
    Percentage,
    Score,
    Slug,
    Title,
    UtcDatetime,
    WebUrl,
    shared_schemas,
    trimmed,
    url_constraints,
    validate,
)


class Sample(LmsModel, schema_name="test.sample", schema_version=2):
    at: UtcDatetime
    note: str = ""
    items: list[int] = []
    title: Title = "untitled"


def errors_of(exc: ModelValidationError) -> list[tuple[str, str]]:
    return [(e["pointer"], e["type"]) for e in exc.errors]


def test_naive_datetime_is_refused_with_a_typed_error() -> None:
    with pytest.raises(ModelValidationError) as caught:
        validate(Sample, {"at": "2026-03-01T09:30:00"})
    assert caught.value.status == 422
    assert caught.value.errors == [
        {"pointer": "#/at", "detail": "Input should have timezone info", "type": "timezone_aware"}
    ]
    with pytest.raises(ValidationError):
        Sample(at=datetime(2026, 3, 1, 9, 30))


@pytest.mark.parametrize(
    ("given", "written"),
    [
        ("2026-03-01T09:30:00Z", "2026-03-01T09:30:00Z"),
        ("2026-03-01T11:30:00+02:00", "2026-03-01T09:30:00Z"),
        ("2026-03-01T01:00:00.250-08:30", "2026-03-01T09:30:00.250000Z"),
    ],
)
def test_datetimes_are_normalised_to_utc_and_written_with_z(given: str, written: str) -> None:
    sample = Sample.model_validate({"at": given})
    assert sample.at.tzinfo is UTC
    assert sample.model_dump(mode="json")["at"] == written
    assert Sample.model_validate_json(sample.model_dump_json()) == sample


def test_a_datetime_that_overflows_in_utc_is_a_validation_error() -> None:
    with pytest.raises(ModelValidationError) as caught:
        validate(Sample, {"at": "0001-01-01T00:00:00+01:00"})
    assert errors_of(caught.value) == [("#/at", "datetime_out_of_range")]


def test_unknown_fields_are_refused_on_input_and_ignored_on_output() -> None:
    with pytest.raises(ModelValidationError) as caught:
        validate(Sample, {"at": "2026-03-01T09:30:00Z", "is_admin": True})
    assert errors_of(caught.value) == [("#/is_admin", "extra_forbidden")]

    class Out(LmsRecord):
        id: int

    assert Out.model_validate({"id": 1, "added_in_a_later_version": "x"}) == Out(id=1)


def test_every_string_and_list_has_a_bound_even_where_the_field_forgot() -> None:
    at = "2026-03-01T09:30:00Z"
    validate(Sample, {"at": at, "note": "x" * DEFAULT_MAX_LENGTH, "items": [0] * DEFAULT_MAX_ITEMS})
    with pytest.raises(ModelValidationError) as caught:
        validate(
            Sample,
            {
                "at": at,
                "note": "x" * (DEFAULT_MAX_LENGTH + 1),
                "items": [0] * (DEFAULT_MAX_ITEMS + 1),
            },
        )
    assert errors_of(caught.value) == [("#/note", "string_too_long"), ("#/items", "too_long")]
    schema = Sample.model_json_schema()
    assert schema["properties"]["note"]["maxLength"] == DEFAULT_MAX_LENGTH
    assert schema["properties"]["items"]["maxItems"] == DEFAULT_MAX_ITEMS


def test_every_shared_schema_bounds_every_string_and_array() -> None:
    def walk(node: Any, where: str) -> None:
        if isinstance(node, dict):
            kind = node.get("type")
            if kind == "string" and "enum" not in node and "const" not in node:
                assert "maxLength" in node or node.get("format") in {
                    "date-time",
                    "date",
                    "uuid",
                }, where
            if kind == "array":
                assert "maxItems" in node, where
            for key, value in node.items():
                walk(value, f"{where}/{key}")
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(value, f"{where}/{i}")

    for entry in shared_schemas():
        walk(entry.json_schema(), entry.name)


def test_a_model_with_a_plain_datetime_is_refused_when_defined() -> None:
    with pytest.raises(TypeError, match="use UtcDatetime"):

        class Bad(LmsModel):
            at: datetime

    with pytest.raises(TypeError, match="use UtcDatetime"):

        class AlsoBad(LmsModel):
            ats: list[datetime | None]


def test_field_names_are_snake_case_and_schema_names_are_dotted() -> None:
    with pytest.raises(TypeError, match="snake_case"):

        class Camel(LmsModel):
            courseId: int

    with pytest.raises(TypeError, match="dotted lower-case"):

        class Named(LmsModel, schema_name="Course"):
            pass

    with pytest.raises(TypeError, match="needs schema_name"):

        class Versioned(LmsModel, schema_version=2):
            pass


def test_schema_name_and_version_are_class_keywords_not_inherited() -> None:
    assert (Sample.schema_name, Sample.schema_version) == ("test.sample", 2)

    class Child(Sample):
        pass

    assert Child.schema_name is None
    schema = Sample.model_json_schema()
    assert schema["x-schema-name"] == "test.sample"
    assert schema["x-schema-version"] == 2


def test_models_are_frozen() -> None:
    sample = Sample.model_validate({"at": "2026-03-01T09:30:00Z"})
    with pytest.raises(ValidationError, match="frozen"):
        sample.note = "changed"  # type: ignore[misc]
    assert sample.model_copy(update={"note": "changed"}).note == "changed"


class Types(LmsModel):
    email: Email | None = None
    slug: Slug | None = None
    locale: LocaleCode | None = None
    percentage: Percentage | None = None
    score: Score | None = None
    title: Title | None = None
    url: WebUrl | None = None
    code: Annotated[str, trimmed(min_length=3, max_length=5)] | None = None
    storage: Annotated[AnyUrl, url_constraints("s3", "https")] | None = None


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("email", "Ada@Example.ORG", "Ada@example.org"),
        ("slug", "intro-to-statistics", "intro-to-statistics"),
        ("locale", "zh-Hant-TW", "zh-Hant-TW"),
        ("locale", "es-419", "es-419"),
        ("percentage", 100, 100.0),
        ("score", 0, 0.0),
        ("title", "  Statistics  ", "Statistics"),
        ("code", " abc ", "abc"),
    ],
)
def test_types_accept_and_normalise(field: str, value: Any, expected: Any) -> None:
    assert getattr(Types.model_validate({field: value}), field) == expected


@pytest.mark.parametrize(
    ("field", "value", "error"),
    [
        ("email", "ada@localhost", "value_error"),
        ("email", "not an email", "value_error"),
        ("slug", "Intro To Stats", "string_pattern_mismatch"),
        ("slug", "trailing-", "string_pattern_mismatch"),
        ("slug", "a" * 65, "string_too_long"),
        ("locale", "english", "string_pattern_mismatch"),
        ("percentage", 100.5, "less_than_equal"),
        ("percentage", "NaN", "finite_number"),
        ("score", -1, "greater_than_equal"),
        ("title", "   ", "string_too_short"),
        ("title", "x" * 201, "string_too_long"),
        ("title", "two\nlines", "string_pattern_mismatch"),
        ("title", "nul\x00byte", "string_pattern_mismatch"),
        ("url", "http://example.org/", "url_scheme"),
        ("url", "javascript:alert(1)", "url_scheme"),
        ("url", "https://example.org/" + "a" * 2048, "url_too_long"),
        ("code", "ab", "string_too_short"),
        ("storage", "ftp://files.example.org/x", "url_scheme"),
    ],
)
def test_types_refuse(field: str, value: Any, error: str) -> None:
    with pytest.raises(ModelValidationError) as caught:
        validate(Types, {field: value})
    assert errors_of(caught.value) == [(f"#/{field}", error)]


def test_url_constraints_need_a_scheme() -> None:
    with pytest.raises(ValueError, match="at least one"):
        url_constraints()


def test_course_create_example_and_defaults() -> None:
    course = CourseCreate(organization_id=uuid4(), slug="stats", title="Statistics")
    assert course.language == "en"
    assert course.tags == []
    dumped = course.model_dump(mode="json")
    assert set(dumped) == set(CourseCreate.model_fields)


def test_offsets_far_from_utc_keep_the_instant() -> None:
    zone = timezone(timedelta(hours=13, minutes=45))
    moment = datetime(2026, 1, 1, 12, tzinfo=zone)
    sample = Sample(at=moment)
    assert sample.at == moment
    assert sample.at.utcoffset() == timedelta(0)
