"""W3C baggage: the caller's tenant and user travel with every call the request makes."""

from __future__ import annotations

from pathlib import Path

import httpx
from fastapi import Request

from lms_shared import create_service, load_settings
from lms_shared.auth import Principal
from lms_shared.http import require
from lms_shared.observability._tracing import baggage_of
from lms_shared.testing import FakeIdentity, service_client


async def test_tenant_and_user_ride_in_baggage_to_the_callee(tmp_path: Path) -> None:
    settings = load_settings(state_dir=str(tmp_path))
    courses = create_service("courses", "1.0.0", settings=settings)

    @courses.router.get("/v1/whoami")
    async def whoami(request: Request) -> dict[str, str]:
        return {**baggage_of(), "header": request.headers.get("baggage", "")}

    enrollments = create_service("enrollments", "1.0.0", settings=settings)
    client = enrollments.client(
        "courses", url="http://courses.test", transport=httpx.ASGITransport(app=courses.app)
    )

    @enrollments.router.get("/v1/ask")
    async def ask(who: Principal = require()) -> dict[str, str]:
        answer: dict[str, str] = await client.get_json("/v1/whoami")
        return answer

    @enrollments.router.get("/v1/anonymous")
    async def anonymous() -> dict[str, str]:
        answer: dict[str, str] = await client.get_json("/v1/whoami")
        return answer

    identity = FakeIdentity()
    identity.install(enrollments)
    async with service_client(courses), service_client(enrollments) as http:
        seen = (await http.get("/v1/ask", headers=identity.headers("u-42", tenant="org-7"))).json()
        nobody = (await http.get("/v1/anonymous")).json()
    assert seen["lms.user"] == "u-42"
    assert seen["lms.tenant"] == "org-7"
    assert "lms.user=u-42" in seen["header"]
    assert "lms.user" not in nobody  # nothing leaks from one request into the next
