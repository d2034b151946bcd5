"""Versioned routers and RFC 9745 / RFC 8594 deprecation headers."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone

import pytest

from lms_shared import Service
from lms_shared.http import Deprecation, versioned_router
from lms_shared.http.versioning import DeprecationRules
from lms_shared.testing import service_client

AT = datetime(2026, 3, 1, tzinfo=UTC)
SUNSET = datetime(2026, 12, 31, 23, 59, 59, tzinfo=UTC)


@pytest.fixture
def service(make_service: Callable[..., Service]) -> Service:
    service = make_service()
    v1 = service.api(1, deprecation=Deprecation(at=AT, sunset=SUNSET, link="https://d.test/v2"))
    v2 = service.api(2)

    @v1.get("/courses")
    async def list_v1() -> list[str]:
        return ["v1"]

    @v2.get("/courses")
    async def list_v2() -> list[str]:
        return ["v2"]

    @v2.get("/courses/legacy-export")
    async def legacy() -> list[str]:
        return ["old"]

    service.include(v1, v2)
    service.deprecate("/v2/courses/legacy-export", Deprecation(at=AT))
    return service


async def test_versions_live_side_by_side(service: Service) -> None:
    async with service_client(service) as client:
        one = await client.get("/v1/courses")
        two = await client.get("/v2/courses")
    assert one.json() == ["v1"]
    assert two.json() == ["v2"]


async def test_deprecated_version_announces_deprecation_and_sunset(service: Service) -> None:
    async with service_client(service) as client:
        response = await client.get("/v1/courses")
    assert response.headers["deprecation"] == f"@{int(AT.timestamp())}" == "@1772323200"
    assert response.headers["sunset"] == "Thu, 31 Dec 2026 23:59:59 GMT"
    assert response.headers["link"] == '<https://d.test/v2>; rel="deprecation"'


async def test_current_version_has_no_deprecation_headers(service: Service) -> None:
    async with service_client(service) as client:
        response = await client.get("/v2/courses")
    assert "deprecation" not in response.headers
    assert "sunset" not in response.headers


async def test_single_route_deprecation(service: Service) -> None:
    async with service_client(service) as client:
        response = await client.get("/v2/courses/legacy-export")
    assert response.headers["deprecation"] == "@1772323200"
    assert "sunset" not in response.headers


async def test_errors_on_deprecated_routes_carry_the_headers(service: Service) -> None:
    async with service_client(service) as client:
        response = await client.post("/v1/courses")
    assert response.status_code == 405
    assert response.headers["deprecation"] == "@1772323200"


async def test_openapi_marks_deprecated_operations(service: Service) -> None:
    async with service_client(service) as client:
        paths = (await client.get("/openapi.json")).json()["paths"]
    assert paths["/v1/courses"]["get"]["deprecated"] is True
    assert paths["/v2/courses/legacy-export"]["get"]["deprecated"] is True
    assert "deprecated" not in paths["/v2/courses"]["get"]


def test_deprecation_needs_aware_and_ordered_dates() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        Deprecation(at=datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="before"):
        Deprecation(at=AT, sunset=AT - timedelta(days=1))


def test_sunset_is_rendered_in_gmt() -> None:
    plus_two = timezone(timedelta(hours=2))
    headers = dict(Deprecation(at=AT, sunset=datetime(2027, 1, 1, 2, tzinfo=plus_two)).headers())
    assert headers[b"sunset"] == b"Fri, 01 Jan 2027 00:00:00 GMT"


def test_most_specific_rule_wins() -> None:
    rules = DeprecationRules()
    general = Deprecation(at=AT)
    specific = Deprecation(at=AT, sunset=SUNSET)
    rules.add("/v1", general)
    rules.add("/v1/courses", specific)
    assert rules.match("/v1/courses/{id}") is specific
    assert rules.match("/v1/users") is general
    assert rules.match("/v10/users") is None
    with pytest.raises(ValueError, match="start with"):
        rules.add("v1", general)


@pytest.mark.parametrize("major", [0, -1, True, 1.5])
def test_versioned_router_needs_a_positive_major(major: object) -> None:
    with pytest.raises(ValueError, match="positive integer"):
        versioned_router(major)  # type: ignore[arg-type]
    assert versioned_router(3).prefix == "/v3"
