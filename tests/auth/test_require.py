"""``require(...)`` over HTTP: 401 vs 403 problems, challenges, course-scoped checks."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request

from lms_shared import Service
from lms_shared.auth import Principal
from lms_shared.http import require
from lms_shared.testing import FakeIdentity, ManualClock, service_client

from .conftest import ISSUER

PROBLEMS = "https://lms.example.org/problems/"


@pytest.fixture
def identity(clock: ManualClock) -> FakeIdentity:
    return FakeIdentity(issuer=ISSUER, clock=clock)


@pytest.fixture
def service(make_protected: Callable[..., Service], identity: FakeIdentity) -> Service:
    service = make_protected()
    identity.install(service)
    return service


@pytest.fixture
async def client(service: Service) -> AsyncIterator[httpx.AsyncClient]:
    async with service_client(service) as client:
        yield client


async def call(
    service: Service, method: str, path: str, headers: dict[str, Any] | None = None
) -> httpx.Response:
    """One request to a service started for it alone."""
    async with service_client(service) as client:
        return await client.request(method, path, headers=headers)


async def test_no_credentials_is_a_401_with_a_bare_challenge(service: Service) -> None:
    response = await call(service, "GET", "/v1/courses/c1")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer realm="courses"'
    body = response.json()
    assert body["type"] == PROBLEMS + "unauthorized"
    assert body["detail"] == "this request needs credentials"


async def test_a_student_reads_but_cannot_grade(
    client: httpx.AsyncClient, identity: FakeIdentity
) -> None:
    headers = identity.headers("ada", roles=["student"])
    ok = await client.get("/v1/courses/c1", headers=headers)
    assert ok.status_code == 200
    assert ok.json() == {"subject": "ada", "kind": "user", "roles": ["student"]}
    denied = await client.post("/v1/courses/c1/grades", headers=headers)
    assert denied.status_code == 403
    assert denied.headers["content-type"] == "application/problem+json"
    assert denied.headers["www-authenticate"] == (
        'Bearer realm="courses", error="insufficient_scope", scope="grade:write"'
    )
    body = denied.json()
    assert body["type"] == PROBLEMS + "insufficient-permission"
    assert body["detail"] == "this action needs the 'grade:write' permission in course c1"


async def test_grading_is_scoped_to_the_course(
    client: httpx.AsyncClient, identity: FakeIdentity
) -> None:
    ta = identity.headers("tom", roles=["student"], course_roles={"c1": ["teaching_assistant"]})
    assert (await client.post("/v1/courses/c1/grades", headers=ta)).status_code == 201
    assert (await client.post("/v1/courses/c2/grades", headers=ta)).status_code == 403
    instructor = identity.headers("ines", roles=["instructor"])
    response = await client.post("/v1/courses/c2/grades", headers=instructor)
    assert response.status_code == 201
    assert response.json() == {"graded_by": "ines", "course": "c2"}


@pytest.mark.parametrize(
    ("headers", "status", "detail"),
    [
        ({"authorization": "Basic dXNlcjpwdw=="}, 401, "'basic' authorization scheme"),
        ({"authorization": "Bearer"}, 400, "'<scheme> <credentials>'"),
        ({"authorization": "Bearer a b"}, 400, "'<scheme> <credentials>'"),
        ({"authorization": "Bearer x", "x-api-key": "y"}, 400, "not both"),
        ({"authorization": "Bearer " + "a" * 20000}, 401, "too large"),
        ({"x-api-key": "lms_0123456789abcdef_" + "a" * 43}, 401, "does not accept API keys"),
    ],
)
async def test_malformed_or_ambiguous_credentials(
    service: Service, headers: dict[str, str], status: int, detail: str
) -> None:
    response = await call(service, "GET", "/v1/courses/c1", headers)
    assert response.status_code == status
    assert detail in response.json()["detail"]
    assert response.headers["www-authenticate"].startswith('Bearer realm="courses"')


async def test_a_repeated_authorization_header_is_refused(
    service: Service, identity: FakeIdentity
) -> None:
    token = identity.token("ada")
    async with service_client(service) as client:
        request = client.build_request("GET", "/v1/courses/c1")
        request.headers = httpx.Headers(
            [*request.headers.raw, (b"authorization", b"Bearer " + token.encode())] * 2
        )
        response = await client.send(request)
    assert response.status_code == 400
    assert 'error="invalid_request"' in response.headers["www-authenticate"]


async def test_expired_tokens_are_refused_even_when_cached(
    service: Service, identity: FakeIdentity, clock: ManualClock
) -> None:
    headers = identity.headers("ada", ttl=60)
    async with service_client(service) as client:
        assert (await client.get("/v1/courses/c1", headers=headers)).status_code == 200
        await clock.advance(60 + 30 + 1)
        response = await client.get("/v1/courses/c1", headers=headers)
    assert response.status_code == 401
    assert response.json()["detail"] == "the token has expired"
    assert 'error_description="the token has expired"' in response.headers["www-authenticate"]


async def test_optional_principal(client: httpx.AsyncClient, identity: FakeIdentity) -> None:
    assert (await client.get("/v1/whoami")).json() == {"subject": None}
    with_token = await client.get("/v1/whoami", headers=identity.headers("ada"))
    assert with_token.json() == {"subject": "ada"}
    bad = await client.get("/v1/whoami", headers={"authorization": "Bearer x.y.z"})
    assert bad.status_code == 401


async def test_the_principal_is_left_in_request_state(
    make_protected: Callable[..., Service], identity: FakeIdentity
) -> None:
    service = make_protected()
    identity.install(service)

    @service.router.get("/audit")
    async def audit(request: Request, who: Principal = require()) -> dict[str, str]:
        assert request.state.principal is who
        return {"by": who.subject}

    response = await call(service, "GET", "/audit", identity.headers("eve", roles=[]))
    assert response.json() == {"by": "eve"}


def test_permissions_are_checked_when_the_route_is_declared() -> None:
    with pytest.raises(ValueError, match="resource:action"):
        require("Course Publish")


async def test_an_app_without_an_authenticator_fails_loudly() -> None:
    app = FastAPI()

    @app.get("/x")
    async def x(who: Principal = require()) -> None: ...

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        with pytest.raises(RuntimeError, match="no authenticator is installed"):
            await client.get("/x", headers={"authorization": "Bearer a.b.c"})


async def test_a_service_without_token_settings_answers_503(
    make_service: Callable[..., Service],
) -> None:
    service = make_service(env="test")  # outside development nothing is trusted by default

    @service.router.get("/x")
    async def x(who: Principal = require()) -> None: ...

    response = await call(service, "GET", "/x", {"authorization": "Bearer a.b.c"})
    assert response.status_code == 503
    assert response.json()["detail"] == (
        "auth: not configured (set LMS_AUTH_JWKS_URL and LMS_AUTH_ISSUER, or LMS_AUTH_HS256_SECRET)"
    )


async def test_unreachable_keys_are_a_503_not_a_401(
    make_protected: Callable[..., Service], identity: FakeIdentity
) -> None:
    service = make_protected(auth_jwks_url="http://127.0.0.1:9/.well-known/jwks.json")
    async with service_client(service) as client:
        ready = await client.get("/health/ready")
        response = await client.get("/v1/courses/c1", headers=identity.headers("ada"))
    assert ready.status_code == 503
    assert ready.json()["checks"]["auth"]["status"] == "fail"
    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"
    assert response.json()["code"] == "service-unavailable"


async def test_protected_operations_declare_bearer_auth_in_openapi(service: Service) -> None:
    document = (await call(service, "GET", "/openapi.json")).json()
    assert document["components"]["securitySchemes"]["bearerAuth"]["bearerFormat"] == "JWT"
    assert document["paths"]["/v1/courses/{course_id}"]["get"]["security"] == [{"bearerAuth": []}]
    assert "security" not in document["paths"]["/health/live"]["get"]
