"""The LMS DTOs: documented examples, cross-field rules, the enrollment lifecycle, privacy."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any
from uuid import uuid4

import pytest
from pydantic import BaseModel, Field

from lms_shared import Service
from lms_shared.models import (
    ENROLLMENT_TRANSITIONS,
    AssignmentCreate,
    CourseCreate,
    CourseUpdate,
    Enrollment,
    EnrollmentStatus,
    Grade,
    GradeCreate,
    GradeUpdate,
    IllegalTransition,
    LessonCreate,
    LmsRecord,
    ModelValidationError,
    Role,
    Submission,
    User,
    UserCreate,
    UserUpdate,
    check_transition,
    shared_schemas,
    transition,
    validate,
)
from lms_shared.observability import configure_logging, get_logger
from lms_shared.redaction import (
    MASK,
    PII_KEYS,
    Personal,
    for_operators,
    is_personal,
    personal_fields,
    redact,
)
from lms_shared.testing import EnrollmentFactory, UserFactory, service_client

NOW = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
S = EnrollmentStatus


def pointers(exc: ModelValidationError) -> list[tuple[str, str]]:
    return [(e["pointer"], e["type"]) for e in exc.errors]


@pytest.mark.parametrize("entry", list(shared_schemas()), ids=lambda e: e.name)
def test_every_dto_is_documented_with_valid_examples(entry: Any) -> None:
    schema = entry.json_schema()
    assert schema["description"], f"{entry.name} has no docstring"
    examples = schema.get("examples")
    assert examples, f"{entry.name} has no example"
    for example in examples:
        entry.model.model_validate(example)
    if entry.name.endswith((".create",)) or not entry.name.endswith(".update"):
        described = [p for p in schema["properties"].values() if "description" in p]
        assert described, f"{entry.name} documents no field"


# --- cross-field rules -----------------------------------------------------------


def test_course_dates_must_be_in_order() -> None:
    base = {"organization_id": str(uuid4()), "slug": "stats", "title": "Statistics"}
    CourseCreate.model_validate({**base, "starts_on": "2026-03-02", "ends_on": "2026-03-02"})
    with pytest.raises(ModelValidationError) as caught:
        validate(CourseCreate, {**base, "starts_on": "2026-03-02", "ends_on": "2026-03-01"})
    assert caught.value.errors == [
        {
            "pointer": "#/ends_on",
            "detail": "ends_on must not be before starts_on",
            "type": "range_order",
        }
    ]
    assert CourseUpdate(ends_on=date(2020, 1, 1)).ends_on == date(2020, 1, 1)


def test_assignment_is_due_strictly_after_it_opens() -> None:
    base = {"course_id": str(uuid4()), "title": "PS1", "max_score": 10}
    with pytest.raises(ModelValidationError) as caught:
        validate(
            AssignmentCreate,
            {**base, "opens_at": "2026-03-09T09:00:00Z", "due_at": "2026-03-09T10:00:00+01:00"},
        )
    assert caught.value.errors[0]["detail"] == "due_at must not be at or before opens_at"


def test_score_may_not_exceed_max_score() -> None:
    sid = str(uuid4())
    assert GradeCreate.model_validate({"submission_id": sid, "max_score": 50, "score": 50})
    with pytest.raises(ModelValidationError) as caught:
        validate(GradeCreate, {"submission_id": sid, "max_score": 50, "score": 50.5})
    assert caught.value.errors == [
        {
            "pointer": "#/score",
            "detail": "score must be at most max_score (50.0)",
            "type": "above_limit",
        }
    ]
    with pytest.raises(ModelValidationError):
        validate(GradeUpdate, {"max_score": 10, "score": 11})
    with pytest.raises(ModelValidationError) as zero:
        validate(GradeCreate, {"submission_id": sid, "max_score": 0, "score": 0})
    assert pointers(zero.value) == [("#/max_score", "greater_than")]


def test_a_video_lesson_needs_a_video_url() -> None:
    with pytest.raises(ModelValidationError) as caught:
        validate(LessonCreate, {"title": "Intro", "kind": "video"})
    assert pointers(caught.value) == [("#", "video_url_missing")]
    LessonCreate(title="Intro", kind="video", video_url="https://v.example.org/1.mp4")  # type: ignore[arg-type]


def test_roles_are_a_sorted_set_and_default_to_student() -> None:
    org = uuid4()
    user = UserCreate(organization_id=org, email="a@example.org", given_name="A", family_name="B")
    assert user.roles == [Role.STUDENT]
    again = UserCreate.model_validate(
        {**user.model_dump(), "roles": ["student", "admin", "student"]}
    )
    assert again.roles == [Role.ADMIN, Role.STUDENT]
    assert UserUpdate(roles=["instructor", "admin"]).roles == [Role.ADMIN, Role.INSTRUCTOR]  # type: ignore[list-item]
    with pytest.raises(ModelValidationError) as caught:
        validate(UserUpdate, {"roles": ["superuser"]})
    assert pointers(caught.value) == [("#/roles/0", "enum")]
    with pytest.raises(ModelValidationError) as empty:
        validate(UserUpdate, {"roles": []})
    assert pointers(empty.value) == [("#/roles", "too_short")]


# --- the enrollment lifecycle ----------------------------------------------------


@pytest.mark.parametrize("current", list(S))
@pytest.mark.parametrize("requested", list(S))
def test_only_lifecycle_transitions_are_allowed(current: S, requested: S) -> None:
    allowed = {
        (S.INVITED, S.ACTIVE),
        (S.ACTIVE, S.COMPLETED),
        (S.ACTIVE, S.DROPPED),
    }
    assert (requested in ENROLLMENT_TRANSITIONS[current]) == ((current, requested) in allowed)
    if (current, requested) in allowed:
        check_transition(current, requested)
        return
    with pytest.raises(IllegalTransition) as caught:
        check_transition(current, requested)
    assert caught.value.status == 409
    assert caught.value.current == current
    assert caught.value.requested == requested


def test_transition_returns_the_changed_enrollment() -> None:
    invited = EnrollmentFactory.build(status=S.INVITED, progress=0.0)
    active = transition(invited, S.ACTIVE, at=NOW)
    assert (active.status, active.completed_at, active.updated_at) == (S.ACTIVE, None, NOW)
    later = NOW.astimezone(UTC) + timedelta(days=30)
    done = transition(active, S.COMPLETED, at=later)
    assert (done.status, done.completed_at, done.progress) == (S.COMPLETED, later, 100.0)
    assert Enrollment.model_validate(done.model_dump()) == done
    assert invited.status is S.INVITED  # the original is unchanged


def test_illegal_transition_names_what_is_allowed() -> None:
    dropped = EnrollmentFactory.build(status=S.DROPPED)
    with pytest.raises(IllegalTransition) as caught:
        transition(dropped, S.ACTIVE, at=NOW)
    assert str(caught.value) == (
        "an enrollment cannot go from 'dropped' to 'active'; allowed: none (final status)"
    )
    invited = EnrollmentFactory.build(status=S.INVITED)
    with pytest.raises(IllegalTransition, match="allowed: active"):
        transition(invited, S.COMPLETED, at=NOW)
    with pytest.raises(ValueError, match="timezone-aware"):
        transition(invited, S.ACTIVE, at=datetime(2026, 1, 1))


def test_completed_at_matches_the_status() -> None:
    data = EnrollmentFactory.build(status=S.ACTIVE).model_dump(mode="json")
    with pytest.raises(ModelValidationError) as caught:
        validate(Enrollment, {**data, "completed_at": "2026-03-01T00:00:00Z"})
    assert pointers(caught.value) == [("#", "completion_mismatch")]


# --- privacy ---------------------------------------------------------------------


def test_personal_fields_are_marked_in_the_schema() -> None:
    assert personal_fields(User) == {"email", "given_name", "family_name", "date_of_birth"}
    assert personal_fields(UserUpdate) == personal_fields(User)
    assert personal_fields(Grade) == {"score", "feedback"}
    assert personal_fields(Submission) == {"content"}
    assert is_personal(User, "email")
    assert not is_personal(User, "locale")
    email = User.model_json_schema()["properties"]["email"]
    assert email["x-personal-data"] is True
    assert email["x-personal-category"] == "contact"


def test_for_operators_redacts_personal_values_only() -> None:
    user = UserFactory.build(date_of_birth=None)
    shown = for_operators(user)
    assert shown["email"] == shown["given_name"] == shown["family_name"] == MASK
    assert shown["date_of_birth"] is None
    assert shown["id"] == str(user.id)
    assert shown["roles"] == [r.value for r in user.roles]
    assert shown["created_at"].endswith("Z")
    json.dumps(shown)  # JSON-ready


def test_markers_work_through_json_schema_extra_and_nesting() -> None:
    class Contact(LmsRecord):
        phone: str = Field(json_schema_extra={"x-personal-data": True})
        city: str

    class Holder(LmsRecord):
        contacts: list[Contact]
        owner: Annotated[str, Personal()] | None = None
        meta: dict[str, Any] = {}

    holder = Holder(
        contacts=[Contact(phone="+44 20", city="London")],
        owner="Ada",
        meta={"email": "x@example.org", "note": "fine", "nested": {"last_name": "L"}},
    )
    assert for_operators(holder) == {
        "contacts": [{"phone": MASK, "city": "London"}],
        "owner": MASK,
        "meta": {"email": MASK, "note": "fine", "nested": {"last_name": MASK}},
    }


def test_redact_handles_plain_data() -> None:
    grade = Grade.model_validate(Grade.model_json_schema()["examples"][0])
    data = {"grades": [grade], "password": "hunter2", "count": 3, "at": NOW, "tags": ("a",)}
    shown = redact(data)
    assert shown["grades"][0]["score"] == MASK
    assert shown["grades"][0]["max_score"] == 50.0
    assert shown["password"] == MASK
    assert shown["count"] == 3
    assert shown["at"] == "2026-03-01T09:30:00Z"
    assert shown["tags"] == ["a"]
    assert "email" in PII_KEYS


def test_logging_a_user_never_writes_the_email() -> None:
    stream = io.StringIO()
    configure_logging(stream=stream)
    user = UserFactory.build(email="ada.lovelace@example.org", given_name="Ada")
    log = get_logger("identity")
    log.info("user created", user=user, email=user.email, changes={"given_name": "Ada"})
    log.bind(users=[user]).warning("bulk import")
    text = stream.getvalue()
    assert "ada.lovelace" not in text
    assert "Ada" not in text
    first, second = (json.loads(line) for line in text.splitlines())
    assert first["user"]["email"] == first["email"] == MASK
    assert first["user"]["id"] == str(user.id)
    assert first["changes"] == {"given_name": MASK}
    assert second["users"][0]["family_name"] == MASK


def test_exceptions_still_render_with_redaction() -> None:
    stream = io.StringIO()
    configure_logging(stream=stream)
    try:
        raise KeyError("course-9")
    except KeyError:
        get_logger().exception("lookup failed", email="a@example.org")
    line = json.loads(stream.getvalue())
    assert "KeyError: 'course-9'" in line["exception"]
    assert line["email"] == MASK


# --- OpenAPI ---------------------------------------------------------------------


async def test_dtos_are_documented_in_openapi(make_service: Callable[..., Service]) -> None:
    service = make_service()
    v1 = service.api(1)

    @v1.post("/users", status_code=201)
    async def create(body: UserCreate) -> User:
        raise NotImplementedError

    service.include(v1)
    async with service_client(service, start=False) as client:
        doc = (await client.get("/openapi.json")).json()
    schemas = doc["components"]["schemas"]
    assert schemas["UserCreate"]["x-schema-name"] == "lms.user.create"
    assert schemas["UserCreate"]["examples"][0]["email"] == "ada@example.org"
    assert schemas["User"]["properties"]["email"]["x-personal-data"] is True
    assert schemas["User"]["properties"]["given_name"]["description"] == "given (first) name"
    assert schemas["User"]["properties"]["created_at"]["format"] == "date-time"
    assert "Role" in schemas


def test_models_compare_by_value() -> None:
    class Point(BaseModel):
        x: int

    assert Point(x=1) == Point(x=1)
