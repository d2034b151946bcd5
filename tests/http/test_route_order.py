"""The chassis's own routes move behind the service's, only where no answer changes."""

from __future__ import annotations

from collections.abc import Callable

from starlette.routing import Host, Router

from lms_shared import Service
from lms_shared.http.routes import move_behind
from lms_shared.testing import service_client

CHASSIS = ["/health/live", "/health/ready", "/health/startup", "/metrics", "/openapi.json"]


def _paths(service: Service) -> list[str]:
    return [getattr(route, "path", "?") for route in service.app.router.routes]


async def test_a_started_service_tries_its_own_routes_first(
    make_service: Callable[..., Service],
) -> None:
    service = make_service()

    @service.router.get("/v1/courses/{course_id}")
    async def course(course_id: str) -> dict[str, str]:
        return {"course": course_id}

    @service.router.get("/v1/ping")
    async def ping() -> dict[str, bool]:
        return {"pong": True}

    assert _paths(service)[-2:] == ["/v1/courses/{course_id}", "/v1/ping"]
    async with service_client(service) as client:
        paths = _paths(service)
        assert paths[:2] == ["/v1/courses/{course_id}", "/v1/ping"]
        assert set(CHASSIS) <= set(paths[2:])
        # every route still answers as before, the probes and docs included
        assert (await client.get("/v1/courses/c-1")).json() == {"course": "c-1"}
        assert (await client.get("/v1/ping")).json() == {"pong": True}
        for path in CHASSIS:
            assert (await client.get(path)).status_code == 200, path
        assert (await client.post("/health/live")).status_code == 405
        assert (await client.head("/health/live")).status_code == 200


async def test_a_route_that_would_shadow_a_probe_keeps_the_probe_in_front(
    make_service: Callable[..., Service],
) -> None:
    service = make_service()

    @service.router.get("/health/{part}")
    async def health_page(part: str) -> dict[str, str]:
        return {"page": part}

    async with service_client(service) as client:
        paths = _paths(service)
        # the three probes stay in front of the route that also matches their paths
        catch_all = paths.index("/health/{part}")
        for probe in ("/health/live", "/health/ready", "/health/startup"):
            assert paths.index(probe) < catch_all
        assert paths.index("/metrics") > catch_all  # nothing shadows it: moved
        assert (await client.get("/health/live")).json()["status"] == "pass"
        assert (await client.get("/health/other")).json() == {"page": "other"}


def test_a_route_it_cannot_read_moves_nothing() -> None:
    async def endpoint() -> None:
        return None

    router = Router()
    router.add_route("/health/live", endpoint)
    own = list(router.routes)
    router.routes.append(Host("api.example", app=Router()))
    router.add_route("/v1/x", endpoint)
    before = list(router.routes)
    assert move_behind(router.routes, own) == 0
    assert router.routes == before


def test_only_static_own_routes_move_and_in_their_order() -> None:
    async def endpoint() -> None:
        return None

    router = Router()
    for path in ("/a/{x}", "/b", "/c"):
        router.add_route(path, endpoint)
    own = list(router.routes)
    router.add_route("/v1/y", endpoint)
    assert move_behind(router.routes, own) == 2
    assert [r.path for r in router.routes] == ["/a/{x}", "/v1/y", "/b", "/c"]
    assert move_behind(router.routes, own) == 2  # moving again changes no order
    assert [r.path for r in router.routes] == ["/a/{x}", "/v1/y", "/b", "/c"]
