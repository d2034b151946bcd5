"""AuthMiddleware: the principal before routing, anonymous requests refused under a prefix."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi import Request

from lms_shared import Service
from lms_shared.auth import MemoryApiKeyStore, Principal, check
from lms_shared.http import AuthMiddleware, require
from lms_shared.testing import FakeIdentity, ManualClock, service_client

from .conftest import ISSUER


@pytest.fixture
def identity(clock: ManualClock) -> FakeIdentity:
    return FakeIdentity(issuer=ISSUER, clock=clock)


@pytest.fixture
def service(make_protected: Callable[..., Service], identity: FakeIdentity) -> Service:
    service = make_protected()
    identity.install(service)
    service.app.add_middleware(
        AuthMiddleware,
        authenticator=service.auth.authenticator,
        renderer=service.problems,
        required=("/v2/",),
    )

    @service.router.get("/v2/courses/{course_id}")
    async def plain(course_id: str, request: Request) -> dict[str, Any]:
        who: Principal = request.state.principal
        check(who, "course:read")
        return {"caller": who.subject}

    @service.router.get("/public")
    async def public(request: Request) -> dict[str, Any]:
        who = getattr(request.state, "principal", None)
        return {"caller": None if who is None else who.subject}

    @service.router.get("/v1/both")
    async def both(request: Request, who: Principal = require("course:read")) -> dict[str, bool]:
        return {"same": request.state.principal is who}

    return service


async def test_required_prefix_refuses_anonymous_and_bad_callers(
    service: Service, identity: FakeIdentity
) -> None:
    async with service_client(service) as client:
        anonymous = await client.get("/v2/courses/c1")
        forged = await client.get("/v2/courses/c1", headers={"authorization": "Bearer a.b.c"})
        ok = await client.get("/v2/courses/c1", headers=identity.headers("ada"))
        observer = await client.get(
            "/v2/courses/c1", headers=identity.headers("obi", roles=["nobody"])
        )
    assert anonymous.status_code == 401
    assert anonymous.headers["www-authenticate"] == 'Bearer realm="courses"'
    assert anonymous.headers["content-type"] == "application/problem+json"
    assert anonymous.json()["instance"] == "/v2/courses/c1"
    assert forged.status_code == 401
    assert 'error="invalid_token"' in forged.headers["www-authenticate"]
    assert ok.json() == {"caller": "ada"}
    assert observer.status_code == 403  # check() in plain code, same problem


async def test_elsewhere_credentials_are_optional_and_shared_with_require(
    service: Service, identity: FakeIdentity
) -> None:
    service.auth.use_api_keys(MemoryApiKeyStore())
    assert service.auth.api_keys is not None
    issued = await service.auth.api_keys.create("ci", owner="bot", roles=["observer"])
    async with service_client(service) as client:
        anonymous = await client.get("/public")
        with_key = await client.get("/public", headers={"x-api-key": issued.secret})
        bad = await client.get("/public", headers={"authorization": "Bearer a.b.c"})
        both = await client.get("/v1/both", headers=identity.headers("ada"))
        bad_on_require = await client.get("/v1/both", headers={"authorization": "Bearer a.b.c"})
    assert anonymous.json() == {"caller": None}
    assert with_key.json() == {"caller": "bot"}
    assert bad.json() == {"caller": None}
    assert both.json() == {"same": True}
    assert bad_on_require.status_code == 401


def test_prefixes_are_paths() -> None:
    with pytest.raises(ValueError, match="starting with '/'"):
        AuthMiddleware(lambda *a: None, authenticator=None, renderer=None, required=("v1",))  # type: ignore[arg-type]
