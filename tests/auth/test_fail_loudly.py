"""A service that cannot check credentials says so: at start, in readiness, on protected routes.

Outside development nothing is trusted by default, so a service with
protected routes and no key settings is not ready, names the settings to
set, and answers its protected routes with a 503 that says the same.
``LMS_ENV=production`` refuses to start instead, naming the variable.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from lms_shared import Service, Settings, SettingsError, create_service, load_settings
from lms_shared.auth import Principal
from lms_shared.http import require
from lms_shared.testing import FakeIdentity, LifespanError, service_client

REASON = (
    "auth: not configured (set LMS_AUTH_JWKS_URL and LMS_AUTH_ISSUER, or LMS_AUTH_HS256_SECRET)"
)
STRONG = "kQ9-vT3x-Lp7w-Zr2m-Ny6c-Hb4s-Jd8f"


def production_settings() -> Settings:
    """Production settings complete but for token keys and a database URL."""
    values: dict[str, Any] = {
        "env": "production",
        "secret_key": STRONG,
        "ratelimit_url": "redis://ratelimit.internal:6379/0",
    }
    if "allowed_hosts" in Settings.model_fields:
        values["allowed_hosts"] = ["courses.example"]
    return load_settings(**values)


def protected(service: Service) -> Service:
    @service.router.get("/mine")
    async def mine(who: Principal = require("course:read")) -> dict[str, str]:
        return {"subject": who.subject}

    return service


async def test_protected_routes_without_keys_are_not_ready_and_say_why(
    make_service: Callable[..., Service], capsys: pytest.CaptureFixture[str]
) -> None:
    service = protected(make_service(env="test"))
    async with service_client(service) as client:
        ready = await client.get("/health/ready")
        anonymous = await client.get("/mine")
        bearer = await client.get("/mine", headers={"authorization": "Bearer a.b.c"})
    assert ready.status_code == 503
    assert ready.json()["checks"]["auth"] == {
        "status": "fail",
        "duration_ms": ready.json()["checks"]["auth"]["duration_ms"],
        "critical": True,
        "output": REASON,
    }
    for response in (anonymous, bearer):
        assert response.status_code == 503
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["detail"] == REASON
    logged = capsys.readouterr().out
    assert REASON in logged
    assert '"level":"warning"' in logged
    assert "/mine" in logged


async def test_a_service_without_protected_routes_is_ready(
    make_service: Callable[..., Service],
) -> None:
    service = make_service(env="test")

    @service.router.get("/open")
    async def open_route() -> dict[str, bool]:
        return {"ok": True}

    async with service_client(service) as client:
        ready = await client.get("/health/ready")
        answer = await client.get("/open")
    assert ready.status_code == 200
    assert "auth" not in ready.json()["checks"]
    assert answer.json() == {"ok": True}


async def test_keys_given_in_code_make_the_service_ready(
    make_service: Callable[..., Service],
) -> None:
    service = protected(make_service(env="test"))
    identity = FakeIdentity()
    identity.install(service)
    async with service_client(service) as client:
        ready = await client.get("/health/ready")
        mine = await client.get("/mine", headers=identity.headers("ada", roles=["student"]))
    assert ready.status_code == 200
    assert mine.json() == {"subject": "ada"}


async def test_an_hs256_secret_is_a_way_to_verify(make_service: Callable[..., Service]) -> None:
    service = protected(make_service(env="test", auth_hs256_secret=STRONG, auth_issuer="idp"))
    async with service_client(service) as client:
        ready = await client.get("/health/ready")
        refused = await client.get("/mine", headers={"authorization": "Bearer a.b.c"})
    assert ready.status_code == 200
    assert refused.status_code == 401


async def test_production_refuses_to_start_without_a_token_verifier() -> None:
    settings = production_settings()
    service = protected(create_service("courses", "1.0.0", settings=settings))
    with pytest.raises(LifespanError) as failed:
        async with service_client(service):
            pass
    caught = failed.value.__cause__
    assert isinstance(caught, SettingsError)
    assert caught.problems == [("LMS_AUTH_JWKS_URL", f"is required in production: {REASON}")]


def test_production_refuses_the_embedded_database() -> None:
    settings = production_settings()
    service = create_service("courses", "1.0.0", settings=settings)
    with pytest.raises(SettingsError) as caught:
        _ = service.db
    assert [variable for variable, _ in caught.value.problems] == ["LMS_DATABASE_URL"]
    assert "embedded SQLite" in str(caught.value)
