"""The test double: tokens for any principal, no identity service running."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from lms_shared import Service, create_service, load_settings
from lms_shared.auth import Principal
from lms_shared.http import require
from lms_shared.testing import FakeIdentity, ManualClock, service_client


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


async def test_the_identity_follows_the_service_clock(
    make_service: Callable[..., Service],
) -> None:
    clock = ManualClock()  # 2026-01-01, far from the system's today
    service = create_service("courses", "1.0.0", settings=load_settings(), clock=clock)

    @service.router.get("/me")
    async def me(who: Principal = require()) -> dict[str, str]:
        return {"subject": who.subject}

    identity = FakeIdentity(ttl=60)
    identity.install(service)
    async with service_client(service) as client:
        fresh = await client.get("/me", headers=identity.headers("ada"))
        token = identity.headers("ada")
        await clock.advance(61 + 30)  # past its lifetime and the verifier's leeway
        expired = await client.get("/me", headers=token)
    assert fresh.status_code == 200, fresh.text
    assert expired.status_code == 401
    assert "expired" in expired.json()["detail"]
