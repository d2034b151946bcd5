"""The test double: tokens for any principal, no identity service running."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from lms_shared import Service
from lms_shared.auth import Principal, require
from lms_shared.testing import FakeIdentity, service_client


async def test_tokens_for_any_principal_across_services(
    make_service: Callable[..., Service], fake_identity: FakeIdentity
) -> None:
    courses, grading = make_service("courses"), make_service("grading")
    for service in (courses, grading):
        fake_identity.install(service)

    @courses.router.get("/v1/courses/{course_id}")
    async def course(course_id: str, who: Principal = require("course:read")) -> dict[str, Any]:
        return {"caller": who.subject, "kind": who.kind, "tenant": who.tenant}

    headers = fake_identity.headers("ada", roles=["student"], tenant="northwind")
    async with service_client(courses) as client, service_client(grading):
        by_user = await client.get("/v1/courses/c1", headers=headers)
        outgoing = grading.auth.outgoing("courses")
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=courses.app), base_url="http://c", auth=outgoing
        ) as as_grading:
            by_service = await as_grading.get("/v1/courses/c1")
    assert by_user.json() == {"caller": "ada", "kind": "user", "tenant": "northwind"}
    assert by_service.json() == {"caller": "grading", "kind": "service", "tenant": None}


async def test_a_verifier_and_plain_principals(fake_identity: FakeIdentity) -> None:
    token = fake_identity.token("svc", kind="service", roles=["service"], audience="reports")
    principal = await fake_identity.verifier("reports").verify(token)
    assert (principal.subject, principal.kind) == ("svc", "service")
    ta = fake_identity.principal("tom", roles=[], course_roles={"c1": ["teaching_assistant"]})
    assert ta.can("grade:write", course="c1")
    assert not ta.can("grade:write", course="c2")
    assert fake_identity.jwks()["keys"][0]["alg"] == "ES256"
