"""The Host header: never reflected into links or Location, and answered only if allowed."""

from __future__ import annotations

from typing import Annotated, Any

import pytest
from fastapi import Depends, Request, Response

from lms_shared import Service, SettingsError, create_service, load_settings
from lms_shared.http import Page, page_params
from lms_shared.http.hosts import AllowedHosts, HostsMiddleware, public_url
from lms_shared.http.problems import ProblemRenderer
from lms_shared.models import PageParams, paginate
from lms_shared.security import InsecureSettingsError
from lms_shared.testing import service_client
from lms_shared.types import Message, Scope

NAMES = [f"course-{i:02d}" for i in range(7)]
EVIL = {"host": "evil.example"}


def build(**overrides: Any) -> Service:
    service = create_service("courses", "1.0.0", settings=load_settings(**overrides))

    @service.router.get("/v1/courses")
    async def list_courses(
        request: Request, params: Annotated[PageParams, Depends(page_params)]
    ) -> Page[str]:
        items, cursor = paginate(NAMES, params, key=lambda name: name)
        return Page[str].build(items, cursor, request)

    @service.router.post("/v1/courses", status_code=201)
    async def create(request: Request, response: Response) -> dict[str, str]:
        # a handler that builds its Location from the request, as url_for does
        response.headers["location"] = str(request.url_for("list_courses")) + "/c-1"
        return {"id": "c-1"}

    @service.router.get("/v1/groups/{name}/courses")
    async def group_courses(
        name: str, request: Request, params: Annotated[PageParams, Depends(page_params)]
    ) -> Page[str]:
        items, cursor = paginate(NAMES, params, key=lambda n: n)
        return Page[str].build(items, cursor, request)

    return service


def links(body: dict[str, Any]) -> list[str]:
    return [value for value in body["links"].values() if value]


async def test_links_and_redirects_never_carry_the_requests_host() -> None:
    async with service_client(build()) as client:
        page = await client.get("/v1/courses?limit=3", headers=EVIL)
        slash = await client.get("/v1/courses/?limit=3", headers=EVIL)
        created = await client.post("/v1/courses", headers=EVIL)
        missing = await client.get("/v1/nothing", headers=EVIL)
    assert page.status_code == 200
    body = page.json()
    assert body["links"]["self"] == "/v1/courses?limit=3"
    assert body["links"]["next"] == f"/v1/courses?limit=3&cursor={body['next_cursor']}"
    assert slash.status_code == 307
    assert slash.headers["location"] == "/v1/courses?limit=3"
    assert created.headers["location"] == "/v1/courses/c-1"
    assert missing.json()["instance"] == "/v1/nothing"
    for response in (page, slash, created, missing):
        assert "evil" not in response.text
        assert all("evil" not in value for value in response.headers.values())


async def test_links_are_built_on_the_public_base_url() -> None:
    service = build(public_base_url="https://api.example.org/courses/")
    async with service_client(service) as client:
        page = (await client.get("/v1/courses?limit=3", headers=EVIL)).json()
        slash = await client.get("/v1/courses/", headers=EVIL)
        created = await client.post("/v1/courses", headers=EVIL)
        spaced = (await client.get("/v1/groups/a b%25/courses?limit=3")).json()
        openapi = (await client.get("/openapi.json")).json()
    assert page["links"]["self"] == "https://api.example.org/courses/v1/courses?limit=3"
    assert page["links"]["next"].startswith("https://api.example.org/courses/v1/courses?limit=3&")
    assert slash.headers["location"] == "https://api.example.org/courses/v1/courses"
    assert created.headers["location"] == "https://api.example.org/courses/v1/courses/c-1"
    assert spaced["links"]["self"] == (
        "https://api.example.org/courses/v1/groups/a%20b%25/courses?limit=3"
    )
    assert openapi["servers"] == [{"url": "https://api.example.org/courses"}]


async def test_a_host_not_allowed_is_a_400_problem() -> None:
    service = build(
        allowed_hosts=["courses.test", "*.example.org", "10.0.0.5"],
        discovery_address="10.1.2.3",
        discovery_port=8000,
    )
    async with service_client(service) as client:
        refused = await client.get("/v1/courses", headers=EVIL)
        apex = await client.get("/v1/courses", headers={"host": "example.org"})
        suffix = await client.get("/v1/courses", headers={"host": "evilexample.org"})
        garbage = await client.get("/v1/courses", headers={"host": "courses.test@evil.example"})
        ok = [
            (await client.get("/v1/courses", headers={"host": host})).status_code
            for host in (
                "courses.test",
                "COURSES.test:8443",
                "a.example.org",
                "b.a.example.org:80",
                "10.0.0.5:8000",
                "10.1.2.3:8000",  # how other services call it (LMS_DISCOVERY_ADDRESS)
            )
        ]
        probe = await client.get("/health/live", headers={"host": "10.9.9.9:8000"})
    assert ok == [200] * 6
    for response in (refused, apex, suffix, garbage):
        assert response.status_code == 400
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["code"] == "invalid-host"
        assert response.headers["x-request-id"]
        assert response.headers["x-content-type-options"] == "nosniff"
        assert "evil" not in response.text
    assert probe.status_code == 200


async def test_without_allowed_hosts_every_host_is_served_in_development() -> None:
    async with service_client(build()) as client:
        response = await client.get("/v1/courses", headers=EVIL)
    assert response.status_code == 200
    async with service_client(build(allowed_hosts=["*"])) as client:
        response = await client.get("/v1/courses", headers=EVIL)
    assert response.status_code == 200


async def test_missing_or_repeated_host_is_refused_when_hosts_are_named() -> None:
    sent: list[Message] = []

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        raise AssertionError("must not be reached")

    middleware = HostsMiddleware(
        app,
        allowed=AllowedHosts(["courses.test"]),
        renderer=ProblemRenderer("https://lms.example.org/problems/"),
    )

    async def send(message: Message) -> None:
        sent.append(message)

    for headers in ([], [(b"host", b"courses.test"), (b"host", b"evil.example")]):
        scope = {"type": "http", "path": "/v1/courses", "headers": headers}
        await middleware(scope, None, send)  # type: ignore[arg-type]
    assert [m["status"] for m in sent if m["type"] == "http.response.start"] == [400, 400]
    assert b"exactly one Host header" in sent[1]["body"]
    await middleware(
        {"type": "websocket", "path": "/ws", "headers": [(b"host", b"evil.example")]},
        None,  # type: ignore[arg-type]
        send,
    )
    assert sent[-1] == {"type": "websocket.close", "code": 1008}


def test_production_needs_named_hosts() -> None:
    values: dict[str, Any] = {
        "env": "production",
        "secret_key": "kQ9-vT3x-Lp7w-Zr2m-Ny6c-Hb4s-Jd8f",
        "ratelimit_url": "redis://ratelimit.internal:6379/0",
    }
    with pytest.raises(InsecureSettingsError) as unset:
        create_service("courses", "1.0.0", settings=load_settings(**values))
    with pytest.raises(InsecureSettingsError) as star:
        create_service("courses", "1.0.0", settings=load_settings(**values, allowed_hosts=["*"]))
    assert [name for name, _ in unset.value.problems] == ["LMS_ALLOWED_HOSTS"]
    assert "is required in production" in unset.value.problems[0][1]
    assert star.value.problems == [
        ("LMS_ALLOWED_HOSTS", "'*' answers for any Host: name the hosts")
    ]


@pytest.mark.parametrize(
    ("overrides", "variable"),
    [
        ({"allowed_hosts": ["exa mple.org"]}, "LMS_ALLOWED_HOSTS"),
        ({"allowed_hosts": ["api.*.org"]}, "LMS_ALLOWED_HOSTS"),
        ({"public_base_url": "api.example.org"}, "LMS_PUBLIC_BASE_URL"),
        ({"public_base_url": "https://api.example.org/?x=1"}, "LMS_PUBLIC_BASE_URL"),
        ({"public_base_url": "https://user:pw@api.example.org"}, "LMS_PUBLIC_BASE_URL"),
    ],
)
def test_bad_host_settings_name_their_variable(overrides: dict[str, Any], variable: str) -> None:
    with pytest.raises(SettingsError) as caught:
        create_service("courses", "1.0.0", settings=load_settings(**overrides))
    assert [name for name, _ in caught.value.problems] == [variable]


def test_public_url_is_relative_without_a_base() -> None:
    assert public_url({"type": "http"}, "/v1/a b", "x=1") == "/v1/a%20b?x=1"
    assert public_url({"type": "http"}, "/v1/courses") == "/v1/courses"
