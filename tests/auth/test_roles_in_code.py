"""Roles in code: a service adds grants to the platform's roles; LMS_AUTH_ROLES replaces."""

from __future__ import annotations

import pytest

from lms_shared import Service, SettingsError, create_service, load_settings
from lms_shared.auth import DEFAULT_ROLES, Policy, Principal
from lms_shared.http import require
from lms_shared.testing import FakeIdentity, service_client

ROLES = {"instructor": ["review:write"], "student": ["review:read"], "moderator": ["review:*"]}


def reviews(**settings: object) -> Service:
    service = create_service("reviews", "1.0.0", settings=load_settings(**settings), roles=ROLES)

    @service.router.post("/reviews")
    async def write(who: Principal = require("review:write")) -> dict[str, str]:
        return {"by": who.subject}

    @service.router.get("/courses/{course_id}")
    async def course(course_id: str, who: Principal = require("course:read")) -> dict[str, str]:
        return {"course": course_id}

    return service


async def test_code_adds_to_the_defaults_without_restating_them() -> None:
    service = reviews()
    identity = FakeIdentity()
    identity.install(service)
    instructor = identity.headers("ada", roles=["instructor"])
    student = identity.headers("bo", roles=["student"])
    moderator = identity.headers("cy", roles=["moderator"])
    async with service_client(service) as client:
        wrote = await client.post("/reviews", headers=instructor)
        still = await client.get("/courses/c1", headers=instructor)  # a default grant, kept
        refused = await client.post("/reviews", headers=student)
        new_role = await client.post("/reviews", headers=moderator)
    assert (wrote.status_code, still.status_code) == (200, 200)
    assert refused.status_code == 403
    assert new_role.status_code == 200
    policy = service.auth.policy
    assert policy.roles["instructor"] == DEFAULT_ROLES["instructor"] | {"review:write"}


async def test_the_operator_setting_replaces_role_by_role() -> None:
    service = reviews(auth_roles={"instructor": ["course:read"]})
    identity = FakeIdentity()
    identity.install(service)
    instructor = identity.headers("ada", roles=["instructor"])
    async with service_client(service) as client:
        refused = await client.post("/reviews", headers=instructor)
        allowed = await client.get("/courses/c1", headers=instructor)
    assert refused.status_code == 403  # LMS_AUTH_ROLES replaced the code's grant too
    assert allowed.status_code == 200
    assert service.auth.policy.roles["student"] == DEFAULT_ROLES["student"] | {"review:read"}


def test_malformed_roles_in_code_are_a_value_error_naming_them() -> None:
    with pytest.raises(ValueError, match="roles given to the service"):
        create_service("reviews", "1.0.0", settings=load_settings(), roles={"Bad Role": ["x:y"]})
    with pytest.raises(ValueError, match="must be a list"):
        Policy(grants={"student": "review:read"})  # type: ignore[dict-item]


def test_malformed_operator_roles_name_the_variable() -> None:
    with pytest.raises(SettingsError, match="LMS_AUTH_ROLES"):
        reviews(auth_roles={"student": ["not a permission"]})
