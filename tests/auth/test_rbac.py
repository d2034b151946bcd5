"""Roles, permissions and checks in plain code (no HTTP)."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest

from lms_shared import Service, SettingsError
from lms_shared.auth import DEFAULT_ROLES, PermissionDenied, Policy, Principal, can, check

COURSE = uuid.UUID("7b0c3f5e-4a1d-4c2b-9a8e-1f2d3c4b5a69")

MATRIX = {
    # permission:          admin  instr  ta     student observer service
    "course:read":        (True,  True,  True,  True,   True,    True),
    "course:publish":     (True,  True,  False, False,  False,   False),
    "lesson:write":       (True,  True,  False, False,  False,   False),
    "grade:write":        (True,  True,  True,  False,  False,   False),
    "grade:read":         (True,  True,  True,  True,   True,    True),
    "submission:write":   (True,  False, False, True,   False,   False),
    "enrollment:create":  (True,  False, False, True,   False,   False),
    "user:delete":        (True,  False, False, False,  False,   False),
}  # fmt: skip
ROLES = ("admin", "instructor", "teaching_assistant", "student", "observer", "service")


@pytest.mark.parametrize("permission", sorted(MATRIX))
def test_lms_default_roles(permission: str) -> None:
    for role, expected in zip(ROLES, MATRIX[permission], strict=True):
        who = Principal(subject="u", roles=frozenset({role}))
        assert can(who, permission) is expected, (role, permission)


def test_the_default_roles_are_the_lms_roles() -> None:
    assert set(DEFAULT_ROLES) == set(ROLES)
    assert DEFAULT_ROLES["admin"] == {"*:*"}


def test_course_roles_apply_to_their_course_only() -> None:
    ta = Principal(
        subject="u",
        roles=frozenset({"student"}),
        course_roles={str(COURSE): {"teaching_assistant"}},
    )  # type: ignore[dict-item]
    assert can(ta, "grade:write", course=COURSE)
    assert can(ta, "grade:write", course=str(COURSE))
    assert not can(ta, "grade:write", course=uuid.uuid4())
    assert not can(ta, "grade:write")  # a platform-wide question
    assert ta.roles_in(COURSE) == {"teaching_assistant"}
    assert ta.roles_in("other") == frozenset()


def test_platform_roles_apply_in_every_course() -> None:
    instructor = Principal(subject="u", roles=frozenset({"instructor"}))
    assert can(instructor, "grade:write", course=COURSE)


def test_scopes_narrow_what_roles_grant() -> None:
    key = Principal(
        subject="u", kind="api_key", roles=frozenset({"instructor"}), scopes=frozenset({"course:*"})
    )
    assert can(key, "course:publish")
    assert not can(key, "grade:write")  # the role grants it, the scope does not
    nothing = Principal(subject="u", roles=frozenset({"admin"}), scopes=frozenset())
    assert not can(nothing, "course:read")
    scoped_only = Principal(subject="u", scopes=frozenset({"*:*"}))
    assert not can(scoped_only, "course:read")  # scopes never grant by themselves


def test_tenant_checks() -> None:
    member = Principal(subject="u", tenant="northwind", roles=frozenset({"admin"}))
    staff = Principal(subject="s", roles=frozenset({"admin"}))
    assert can(member, "course:read", tenant="northwind")
    assert not can(member, "course:read", tenant="contoso")
    assert can(staff, "course:read", tenant="contoso")


def test_check_raises_a_403_problem() -> None:
    student = Principal(subject="u", roles=frozenset({"student"}))
    check(student, "course:read")
    with pytest.raises(PermissionDenied) as caught:
        check(student, "grade:write", course=COURSE)
    assert caught.value.status == 403
    assert caught.value.permission == "grade:write"
    assert str(caught.value) == f"this action needs the 'grade:write' permission in course {COURSE}"
    with pytest.raises(PermissionDenied):
        student.check("grade:write")


def test_wildcards() -> None:
    policy = Policy({"reader": ["*:read"], "lessons": ["lesson:*"], "root": ["*"]})
    reader = Principal(subject="r", roles=frozenset({"reader"}), policy=policy)
    lessons = Principal(subject="l", roles=frozenset({"lessons"}), policy=policy)
    root = Principal(subject="x", roles=frozenset({"root"}), policy=policy)
    assert reader.can("grade:read")
    assert not reader.can("grade:write")
    assert lessons.can("lesson:delete")
    assert not lessons.can("course:read")
    assert root.can("anything:goes")
    assert not Principal(subject="n", roles=frozenset({"nope"}), policy=policy).can("a:b")


@pytest.mark.parametrize("bad", ["course", "Course:Read", "course:read:x", "*", "course:*", ""])
def test_a_checked_permission_is_concrete(bad: str) -> None:
    with pytest.raises(ValueError, match="resource:action"):
        can(Principal(subject="u"), bad)


@pytest.mark.parametrize(
    "roles",
    [{"Bad Role": ["course:read"]}, {"x": ["course"]}, {"x": "course:read"}, {"x": ["a:b:c"]}],
)
def test_malformed_policies_are_refused(roles: dict[str, object]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011
        Policy(overrides=roles)  # type: ignore[arg-type]


def test_settings_override_and_add_roles(make_service: Callable[..., Service]) -> None:
    service = make_service(
        auth_roles={"observer": ["course:read"], "grader": ["grade:*", "submission:read"]}
    )
    policy = service.auth.policy
    assert policy.roles["observer"] == {"course:read"}
    assert policy.roles["grader"] == {"grade:*", "submission:read"}
    assert policy.roles["student"] == DEFAULT_ROLES["student"]
    grader = Principal(subject="g", roles=frozenset({"grader"}), policy=policy)
    assert grader.can("grade:write")
    assert not Principal(subject="g", roles=frozenset({"grader"})).can("grade:write")


def test_bad_role_settings_name_the_variable(make_service: Callable[..., Service]) -> None:
    with pytest.raises(SettingsError, match="LMS_AUTH_ROLES"):
        make_service(auth_roles={"x": ["not a permission"]})


def test_principals_are_validated_and_immutable() -> None:
    with pytest.raises(ValueError, match="subject"):
        Principal(subject="")
    with pytest.raises(ValueError, match="kind"):
        Principal(subject="u", kind="robot")  # type: ignore[arg-type]
    who = Principal(subject="u", roles=frozenset({"student"}), course_roles={"c": {"student"}})  # type: ignore[dict-item]
    with pytest.raises(AttributeError):
        who.subject = "v"  # type: ignore[misc]
    with pytest.raises(TypeError):
        who.course_roles["c"] = frozenset()  # type: ignore[index]
    assert who == Principal(
        subject="u", roles=frozenset({"student"}), course_roles={"c": frozenset({"student"})}
    )
    assert who.to_claims() == {"sub": "u", "roles": ["student"], "course_roles": {"c": ["student"]}}


def test_decisions_are_remembered_per_question() -> None:
    who = Principal(subject="u", course_roles={"c1": frozenset({"instructor"})})
    assert who.can("grade:write", course="c1")
    assert not who.can("grade:write", course="c2")
    assert who.can("grade:write", course="c1")
    assert len(who._decisions) == 2
