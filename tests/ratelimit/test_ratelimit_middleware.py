"""The rate-limit middleware and dependency, over HTTP through a real service."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import Depends, Request

from lms_shared import Service, SettingsError, create_service, load_settings
from lms_shared.http import exempt, limit, rate_limited
from lms_shared.ratelimit import Decision
from lms_shared.testing import ManualClock, service_client

PER_USER = rate_limited("2/minute", name="per-user")


def build(clock: ManualClock | None = None, **overrides: Any) -> Service:
    settings = load_settings(**{"ratelimit_default": "3/minute", **overrides})
    service = create_service("courses", "1.0.0", settings=settings, clock=clock or ManualClock())

    @service.router.get("/v1/courses")
    async def courses() -> dict[str, bool]:
        return {"ok": True}

    @service.router.post("/v1/login")
    @limit("2/minute", name="login")
    async def login() -> dict[str, bool]:
        return {"ok": True}

    @service.router.get("/v1/public")
    @exempt
    async def public() -> dict[str, bool]:
        return {"ok": True}

    return service


async def test_admitted_responses_carry_ratelimit_headers() -> None:
    async with service_client(build()) as client:
        first = await client.get("/v1/courses")
        second = await client.get("/v1/courses")
    assert first.status_code == 200
    assert first.headers["ratelimit-policy"] == '"default";q=3;w=60'
    assert first.headers["ratelimit"] == '"default";r=2;t=20'
    assert second.headers["ratelimit"] == '"default";r=1;t=20'  # until one more, not all
    assert "retry-after" not in first.headers


async def test_exhausted_quota_gets_an_exact_429_problem() -> None:
    async with service_client(build()) as client:
        for _ in range(3):
            await client.get("/v1/courses")
        response = await client.get("/v1/courses")
    assert response.status_code == 429
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["retry-after"] == "20"
    assert response.headers["ratelimit"] == '"default";r=0;t=20'
    assert response.headers["ratelimit-policy"] == '"default";q=3;w=60'
    assert response.json() == {
        "type": "https://iana.org/assignments/http-problem-types#quota-exceeded",
        "title": "Quota exceeded",
        "status": 429,
        "detail": "rate limit 'default' exceeded; retry in 20 s",
        "instance": "/v1/courses",
        "code": "rate-limited",
        "request_id": response.headers["x-request-id"],
        "violated-policies": ["default"],
    }


async def test_time_refills_the_quota_without_sleeping() -> None:
    clock = ManualClock()
    async with service_client(build(clock)) as client:
        for _ in range(3):
            await client.get("/v1/courses")
        assert (await client.get("/v1/courses")).status_code == 429
        await clock.advance(20)
        assert (await client.get("/v1/courses")).status_code == 200


async def test_route_override_replaces_the_default() -> None:
    async with service_client(build()) as client:
        codes = [(await client.post("/v1/login")).status_code for _ in range(3)]
        other = await client.get("/v1/courses")
    assert codes == [200, 200, 429]
    assert other.headers["ratelimit"] == '"default";r=2;t=20'  # login did not use it


async def test_exempt_routes_and_health_probes_are_not_limited() -> None:
    async with service_client(build()) as client:
        public = [await client.get("/v1/public") for _ in range(5)]
        ready = [await client.get("/health/live") for _ in range(5)]
    assert {r.status_code for r in public + ready} == {200}
    assert "ratelimit" not in public[0].headers


async def test_no_default_limits_only_the_decorated_routes() -> None:
    async with service_client(build(ratelimit_default=None)) as client:
        codes = [(await client.get("/v1/courses")).status_code for _ in range(10)]
        login = [(await client.post("/v1/login")).status_code for _ in range(3)]
    assert set(codes) == {200}
    assert login == [200, 200, 429]


async def test_overrides_work_before_the_lifespan_ran() -> None:
    async with service_client(build(), start=False) as client:
        codes = [(await client.post("/v1/login")).status_code for _ in range(3)]
    assert codes == [200, 200, 429]


async def test_spoofed_forwarding_headers_from_untrusted_clients_are_ignored() -> None:
    async with service_client(build()) as client:
        codes = [
            (
                await client.get("/v1/courses", headers={"x-forwarded-for": f"203.0.113.{i}"})
            ).status_code
            for i in range(5)
        ]
        forwarded = await client.get("/v1/courses", headers={"forwarded": "for=192.0.2.1"})
    assert codes == [200, 200, 200, 429, 429]  # one quota: the peer's, not the claimed ones
    assert forwarded.status_code == 429


async def test_trusted_proxy_forwarding_headers_identify_the_client() -> None:
    # httpx's ASGI transport connects from 127.0.0.1: make that the trusted proxy
    service = build(trusted_proxies=["127.0.0.1/32"])
    async with service_client(service) as client:
        for _ in range(3):
            await client.get("/v1/courses", headers={"x-forwarded-for": "203.0.113.5"})
        blocked = await client.get("/v1/courses", headers={"x-forwarded-for": "203.0.113.5"})
        other = await client.get("/v1/courses", headers={"x-forwarded-for": "203.0.113.6"})
        # a client prepending a fake hop still counts as itself (rightmost untrusted)
        spoof = await client.get(
            "/v1/courses", headers={"x-forwarded-for": "198.51.100.1, 203.0.113.5"}
        )
    assert blocked.status_code == 429
    assert other.status_code == 200
    assert spoof.status_code == 429


async def test_dependency_limits_per_principal() -> None:
    service = build()

    async def authenticate(request: Request, user: str) -> None:  # stands in for require()
        request.state.principal = user

    @service.router.get("/v1/as/{user}", dependencies=[Depends(authenticate)])
    @exempt  # from the per-address default: this route counts per user
    async def as_user(user: str, _: Decision = PER_USER) -> dict[str, str]:
        return {"user": user}

    async with service_client(service) as client:
        ann = [await client.get("/v1/as/ann") for _ in range(3)]
        bob = await client.get("/v1/as/bob")
    assert [r.status_code for r in ann] == [200, 200, 429]
    assert ann[2].json()["violated-policies"] == ["per-user"]
    assert ann[2].headers["retry-after"] == "30"
    assert bob.status_code == 200
    assert bob.headers["ratelimit"] == '"per-user";r=1;t=30'
    assert bob.headers["ratelimit-policy"] == '"per-user";q=2;w=60'


async def test_api_key_keying_hashes_the_key() -> None:
    service = build(ratelimit_by=["api_key", "ip"])
    async with service_client(service) as client:
        key_a = [
            (await client.get("/v1/courses", headers={"x-api-key": "lms_a" * 8})).status_code
            for _ in range(4)
        ]
        key_b = await client.get("/v1/courses", headers={"authorization": "ApiKey " + "b" * 40})
        no_key = await client.get("/v1/courses")
    assert key_a == [200, 200, 200, 429]
    assert key_b.status_code == 200
    assert no_key.status_code == 200  # counted by address instead


async def test_unreachable_storage_fails_open_by_default() -> None:
    service = build(ratelimit_url="redis://127.0.0.1:1/0")
    async with service_client(service) as client:
        codes = [(await client.get("/v1/courses")).status_code for _ in range(5)]
        response = await client.get("/v1/courses")
        ready = await client.get("/health/ready")
    assert set(codes) == {200}
    assert "ratelimit" not in response.headers
    assert ready.json()["checks"]["ratelimit"]["status"] == "warn"
    assert ready.status_code == 200  # not critical when failing open


async def test_unreachable_storage_fails_closed_when_asked() -> None:
    service = build(ratelimit_url="redis://127.0.0.1:1/0", ratelimit_on_error="deny")
    async with service_client(service, start=False) as client:
        response = await client.get("/v1/courses")
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    assert response.json()["code"] == "service-unavailable"


@pytest.mark.parametrize(
    ("overrides", "variable"),
    [
        ({"ratelimit_default": "lots"}, "LMS_RATELIMIT_DEFAULT"),
        ({"ratelimit_url": "memcached://x"}, "LMS_RATELIMIT_URL"),
        ({"trusted_proxies": ["10.0.0.0/33"]}, "LMS_TRUSTED_PROXIES"),
    ],
)
def test_bad_settings_fail_at_construction_naming_the_variable(
    overrides: dict[str, Any], variable: str
) -> None:
    with pytest.raises(SettingsError) as caught:
        create_service("courses", "1.0.0", settings=load_settings(**overrides))
    assert [var for var, _ in caught.value.problems] == [variable]


async def test_route_overrides_inside_versioned_routers_are_found() -> None:
    """Routes of ``service.api(1)`` live inside an included router."""
    settings = load_settings(ratelimit_default=None)
    service = create_service("identity", "1.0.0", settings=settings, clock=ManualClock())
    v1 = service.api(1)

    @v1.post("/login")
    @limit("2/minute", name="login")
    async def login() -> dict[str, bool]:
        return {"ok": True}

    @v1.get("/users")
    async def users() -> dict[str, bool]:
        return {"ok": True}

    service.include(v1)
    async with service_client(service) as client:
        codes = [(await client.post("/v1/login")).status_code for _ in range(3)]
        listed = [(await client.get("/v1/users")).status_code for _ in range(5)]
    assert codes == [200, 200, 429]
    assert set(listed) == {200}


async def test_each_path_and_method_gets_its_own_routes_limit_however_many_were_seen(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("lms_shared.http.ratelimit.REMEMBERED_PATHS", 3)
    service = build(ratelimit_default="1000/minute")

    @service.router.get("/v1/courses/{course_id}")
    @limit("500/minute", name="course")
    async def course(course_id: int) -> dict[str, int]:
        return {"course": course_id}

    def policy(response: Any) -> str:
        return str(response.headers["ratelimit-policy"]).split(";")[0]

    async with service_client(service) as client:
        for n in range(10):  # more paths than remembered: forgotten, matched again
            assert policy(await client.get(f"/v1/courses/{n}")) == '"course"'
            assert policy(await client.get("/v1/courses")) == '"default"'
            assert policy(await client.post("/v1/login")) == '"login"'
            # GET of the login path: no route matches fully, the default applies
            assert policy(await client.get("/v1/login")) == '"default"'
            assert "ratelimit-policy" not in (await client.get("/v1/public")).headers
