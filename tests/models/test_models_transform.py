"""Transformation: rows <-> DTOs, JSON Merge Patch, sparse fieldsets."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

import pytest
from sqlalchemy import Column, DateTime, ForeignKey, Integer, MetaData, String, Table, create_engine
from sqlalchemy import insert as sql_insert
from sqlalchemy import select as sql_select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship

from lms_shared.http import FieldSet, SparseFields
from lms_shared.models import (
    Course,
    CourseUpdate,
    LmsModel,
    LmsRecord,
    MalformedPatch,
    ModelValidationError,
    Module,
    UnknownFields,
    User,
    UserUpdate,
    apply_merge_patch,
    apply_update,
    from_row,
    from_rows,
    merge_patch,
    parse_merge_patch,
    to_values,
)
from lms_shared.security import CleanLine, SafeHtml
from lms_shared.testing import CourseFactory, UserFactory

NAIVE = datetime(2026, 3, 1, 9, 30)
AWARE = NAIVE.replace(tzinfo=UTC)


# --- rows <-> DTOs ---------------------------------------------------------------


class Base(DeclarativeBase):
    pass


class ModuleRow(Base):
    __tablename__ = "modules"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    version: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    updated_at: Mapped[datetime] = mapped_column(DateTime)
    course_id: Mapped[str] = mapped_column(ForeignKey("courses.id"))
    title: Mapped[str] = mapped_column(String(200))
    summary: Mapped[str | None] = mapped_column(String(2000), nullable=True)
    position: Mapped[int] = mapped_column(Integer)
    internal_note: Mapped[str] = mapped_column(String(50), default="")


class CourseRow(Base):
    __tablename__ = "courses"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    version: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    updated_at: Mapped[datetime] = mapped_column(DateTime)
    tenant_id: Mapped[str] = mapped_column(String(64))
    slug: Mapped[str] = mapped_column(String(64))
    title: Mapped[str] = mapped_column(String(200))
    language: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    modules: Mapped[list[ModuleRow]] = relationship(lazy="selectin")


def course_row(course_id: str, tenant: str) -> dict[str, Any]:
    return {
        "id": course_id,
        "version": 2,
        "created_at": NAIVE,
        "updated_at": NAIVE,
        "tenant_id": tenant,
        "slug": "stats",
        "title": "Statistics",
        "language": "en",
        "status": "published",
    }


def test_from_row_reads_orm_objects_with_relationships_and_naive_utc() -> None:
    engine = create_engine("sqlite://")
    Base.metadata.create_all(engine)
    course_id, tenant = str(uuid4()), str(uuid4())
    module = {"course_id": course_id, "title": "Describing data", "position": 0}
    with Session(engine) as session:
        course = CourseRow(**course_row(course_id, tenant))
        course.modules.append(
            ModuleRow(id=str(uuid4()), version=1, created_at=NAIVE, updated_at=NAIVE, **module)
        )
        session.add(course)
        session.commit()
        stored = session.get(CourseRow, course_id)
        dto = from_row(Course, stored, rename={"tenant_id": "organization_id"})
    assert dto.id == UUID(course_id)
    assert dto.organization_id == UUID(tenant)
    assert dto.created_at == AWARE
    assert dto.modules[0].title == "Describing data"
    assert dto.modules[0].created_at == AWARE
    assert dto.modules[0].lessons == []


def test_from_row_reads_core_rows_and_mappings() -> None:
    engine = create_engine("sqlite://")
    metadata = MetaData()
    table = Table(
        "courses",
        metadata,
        *(Column(name, String(200)) for name in ("id", "tenant_id", "slug", "title")),
        *(Column(name, String(16)) for name in ("language", "status")),
        Column("version", Integer),
        Column("created_at", DateTime),
        Column("updated_at", DateTime),
    )
    metadata.create_all(engine)
    rows = [course_row(str(uuid4()), str(uuid4())) for _ in range(2)]
    with engine.begin() as conn:
        conn.execute(sql_insert(table), rows)
        fetched = conn.execute(sql_select(table)).all()
        mapped = conn.execute(sql_select(table)).mappings().all()
    rename = {"tenant_id": "organization_id"}
    courses = from_rows(Course, fetched, rename=rename)
    assert [str(c.id) for c in courses] == [r["id"] for r in rows]
    assert from_rows(Course, mapped, rename=rename) == courses
    assert from_row(Course, {**rows[0], "organization_id": rows[0]["tenant_id"]}) == courses[0]


def test_from_row_still_refuses_bad_stored_data() -> None:
    with pytest.raises(Exception, match="validation error"):
        from_row(Course, {"id": "x"})


def test_to_values_gives_column_values() -> None:
    course = CourseFactory.build(website=None)
    values = to_values(course, exclude={"modules"}, rename={"organization_id": "tenant_id"})
    assert "modules" not in values
    assert values["tenant_id"] == course.organization_id
    assert values["created_at"] == course.created_at
    assert isinstance(values["status"], str)
    changes = UserUpdate(given_name="Ada", date_of_birth=None)
    assert to_values(changes, exclude_unset=True) == {"given_name": "Ada", "date_of_birth": None}
    user = UserFactory.build()
    assert set(to_values(user)) == set(User.model_fields)


def test_to_values_turns_urls_into_strings() -> None:
    from lms_shared.testing import SubmissionFactory

    submission = SubmissionFactory.build(attachments=["https://files.example.org/a.pdf"])
    assert to_values(submission)["attachments"] == ["https://files.example.org/a.pdf"]


# --- JSON Merge Patch ------------------------------------------------------------

RFC7396_APPENDIX_A = [
    ({"a": "b"}, {"a": "c"}, {"a": "c"}),
    ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
    ({"a": "b"}, {"a": None}, {}),
    ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
    ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
    ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
    ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
    ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
    (["a", "b"], ["c", "d"], ["c", "d"]),
    ({"a": "b"}, ["c"], ["c"]),
    ({"a": "foo"}, None, None),
    ({"a": "foo"}, "bar", "bar"),
    ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
    ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
    ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
]


@pytest.mark.parametrize(("target", "patch", "result"), RFC7396_APPENDIX_A)
def test_merge_patch_follows_rfc7396_appendix_a(target: Any, patch: Any, result: Any) -> None:
    before = json.dumps(target)
    assert merge_patch(target, patch) == result
    assert json.dumps(target) == before  # the target is not modified


def test_apply_merge_patch_changes_only_what_the_patch_says() -> None:
    course = CourseFactory.build(summary="old", capacity=30, tags=["a"])
    changed = apply_merge_patch(
        course, b'{"title": "New", "summary": null, "tags": ["b"]}', CourseUpdate
    )
    assert (changed.title, changed.summary, changed.tags) == ("New", None, ["b"])
    assert changed.capacity == 30
    assert (changed.id, changed.version, changed.modules) == (
        course.id,
        course.version,
        course.modules,
    )
    assert apply_merge_patch(course, {}, CourseUpdate) == course


@pytest.mark.parametrize(
    ("patch", "detail"),
    [
        (b"[1, 2]", "a merge patch must be a JSON object, got an array"),
        (b'"title"', "a merge patch must be a JSON object, got a string"),
        (b"null", "a merge patch must be a JSON object, got null"),
        (b"7", "a merge patch must be a JSON object, got a number"),
        (b'{"title": ', None),
        (b"\xff", None),
    ],
)
def test_a_malformed_merge_patch_is_a_400(patch: bytes, detail: str | None) -> None:
    course = CourseFactory.build()
    with pytest.raises(MalformedPatch) as caught:
        apply_merge_patch(course, patch, CourseUpdate)
    assert caught.value.status == 400
    if detail is None:
        assert str(caught.value).startswith("the merge patch is not valid JSON")
    else:
        assert str(caught.value) == detail


def test_a_deeply_nested_patch_is_refused() -> None:
    deep: dict[str, Any] = {}
    node = deep
    for _ in range(40):
        node["x"] = {}
        node = node["x"]
    with pytest.raises(MalformedPatch, match="nested deeper"):
        parse_merge_patch(deep)


@pytest.mark.parametrize(
    ("patch", "errors"),
    [
        ({"id": str(uuid4())}, [("#/id", "extra_forbidden")]),
        ({"version": 99}, [("#/version", "extra_forbidden")]),
        ({"title": None}, [("#/title", "missing")]),
        ({"status": "deleted"}, [("#/status", "enum")]),
        ({"title": "x" * 201}, [("#/title", "string_too_long")]),
        ({"starts_on": "2026-05-01", "ends_on": "2026-04-01"}, [("#/ends_on", "range_order")]),
    ],
)
def test_a_patch_that_does_not_fit_is_a_422(
    patch: dict[str, Any], errors: list[tuple[str, str]]
) -> None:
    course = CourseFactory.build(starts_on=None, ends_on=None)
    with pytest.raises(ModelValidationError) as caught:
        apply_merge_patch(course, patch, CourseUpdate)
    assert [(e["pointer"], e["type"]) for e in caught.value.errors] == errors


def test_a_patch_must_leave_a_valid_resource() -> None:
    course = CourseFactory.build(starts_on=None, ends_on=datetime(2026, 1, 1).date())
    with pytest.raises(ModelValidationError) as caught:
        apply_merge_patch(course, {"starts_on": "2026-02-01"}, CourseUpdate)
    assert caught.value.errors[0]["pointer"] == "#/ends_on"


def test_apply_update_uses_only_the_fields_sent() -> None:
    user = UserFactory.build(date_of_birth=datetime(2000, 1, 1).date())
    update = UserUpdate.model_validate({"family_name": "King", "date_of_birth": None})
    changed = apply_update(user, update)
    assert (changed.family_name, changed.date_of_birth) == ("King", None)
    assert changed.given_name == user.given_name
    with pytest.raises(ModelValidationError):
        apply_update(user, UserUpdate.model_validate({"email": None}))


# --- sparse fieldsets ------------------------------------------------------------


def test_sparse_fields_select_and_refuse_unknown_names() -> None:
    fields = SparseFields(Module, allowed={"id", "title", "position"}, always={"id"})
    course = CourseFactory.build()
    assert fields.parse(None) == FieldSet(None)
    assert fields.parse(" , ") == FieldSet(None)
    selected = fields.parse("title, position,title")
    assert selected.names == {"id", "title", "position"}
    with pytest.raises(UnknownFields) as caught:
        fields.parse("title,lessons,secret,lessons")
    assert caught.value.fields == ["lessons", "secret"]
    assert str(caught.value) == (
        "unknown fields 'lessons', 'secret' in ?fields=; allowed: id, position, title"
    )
    assert caught.value.status == 400
    course_fields = SparseFields(Course)
    picked = course_fields.parse("id,title").apply(course)
    assert picked == {"id": str(course.id), "title": course.title}
    assert course_fields.parse(None).apply(course) == course.model_dump(mode="json")


def test_sparse_fields_check_their_allowlist() -> None:
    with pytest.raises(ValueError, match="no field"):
        SparseFields(Module, allowed={"nope"})


class _Note(LmsRecord, schema_name="test.note"):
    id: int
    body: str
    title: str
    version: int = 1


class _NoteUpdate(LmsModel):
    body: SafeHtml | None = None
    title: CleanLine | None = None


def test_patch_stores_what_the_update_model_produced_not_the_raw_document() -> None:
    note = _Note(id=1, body="<p>hi</p>", title="Hello")
    patched = apply_merge_patch(
        note,
        {"body": '<p>ok</p><script>alert("x")</script>', "title": "  spaced\u200b  "},
        _NoteUpdate,
    )
    assert "<script>" not in patched.body
    assert patched.body.startswith("<p>ok</p>")
    assert patched.title == "spaced"
    untouched = apply_merge_patch(note, b'{"title": "New"}', _NoteUpdate)
    assert (untouched.body, untouched.title) == ("<p>hi</p>", "New")
