"""The test double: other services in process, under the real client (FakeServices)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from starlette.requests import Request

from lms_shared import NotFound, create_service, load_settings
from lms_shared.auth import Principal
from lms_shared.client import ServiceUnreachable, UpstreamUnavailable
from lms_shared.discovery import Instance, NoInstances
from lms_shared.http import require
from lms_shared.resilience import AttemptTimeout, BreakerState, CircuitOpen
from lms_shared.testing import FakeIdentity, FakeServices, ManualClock, service_client


def courses_service(**settings: Any) -> Any:
    """The service under test: it asks identity about users."""
    service = create_service("courses", "1.0.0", settings=load_settings(**settings))
    identity = service.client("identity")

    @service.router.get("/owner/{user_id}")
    async def owner(user_id: str) -> dict[str, Any]:
        try:
            user = await identity.get_json(f"/v1/users/{user_id}")
        except NotFound:
            raise NotFound(f"no user {user_id}") from None
        return {"owner": user["name"]}

    @service.router.post("/notify")
    async def notify() -> dict[str, Any]:
        return await identity.post_json("/v1/notifications", {"to": "ada"})  # type: ignore[no-any-return]

    return service


def user(request: Request) -> Any:
    return {"id": request.path_params["user_id"], "name": "Ada"}


async def test_a_fake_service_answers_through_discovery_and_records_calls() -> None:
    service = courses_service(discovery_balancer="round_robin")
    fakes = FakeServices()
    identity = fakes.add("identity", {"GET /v1/users/{user_id}": user}, instances=2)
    fakes.install(service)
    async with service_client(service) as http:
        answers = [await http.get(f"/owner/{n}") for n in range(4)]

    assert [a.json() for a in answers] == [{"owner": "Ada"}] * 4
    identity.assert_called("GET", "/v1/users/3", times=1)
    assert {i: len(calls) for i, calls in identity.calls_by_instance.items()} == {
        "identity-1": 2,
        "identity-2": 2,
    }
    assert identity.calls[0].headers["user-agent"] == "courses/1.0.0"


async def test_faults_play_under_the_real_retry_and_breaker() -> None:
    service = courses_service(discovery_balancer="round_robin")
    fakes = FakeServices()
    identity = fakes.add("identity", {"GET /v1/users/{user_id}": user}, instances=2)
    fakes.install(service)
    async with service_client(service) as http:
        identity.fail(503, times=2)
        retried = await http.get("/owner/1")
        identity.fail(404, code="not-found", detail="no such user")
        missing = await http.get("/owner/2")
        identity.down(instance="identity-1")
        moved = [await http.get(f"/owner/{n}") for n in range(10, 20)]
        breaker = service.client("identity").instance_breaker("identity-1")

    assert retried.status_code == 200
    identity.assert_called("GET", "/v1/users/1", times=3)  # two 503s, then an answer
    assert (missing.status_code, missing.json()["detail"]) == (404, "no user 2")
    identity.assert_called("GET", "/v1/users/2", times=1)  # a 404 is an answer
    assert all(r.status_code == 200 for r in moved)
    assert breaker is not None
    assert breaker.state is BreakerState.OPEN
    assert breaker.metrics().failed_calls <= 5  # skipped once its breaker opened


async def test_a_reset_post_is_not_retried_and_a_timeout_is_an_attempt_timeout() -> None:
    clock = ManualClock()
    service = create_service("courses", "1.0.0", settings=load_settings(), clock=clock)
    client = service.client("identity", attempt_timeout=1.0, retries=0)
    fakes = FakeServices(clock=clock)
    identity = fakes.add("identity", {"POST /v1/notifications": {}, "GET /v1/x": {}})
    fakes.install(service)

    identity.reset()
    with pytest.raises(ServiceUnreachable):
        await client.post_json("/v1/notifications", {"to": "ada"})
    identity.timeout()
    with pytest.raises(AttemptTimeout):
        await client.get_json("/v1/x")
    identity.delay(5.0)
    slow = asyncio.ensure_future(client.get_json("/v1/x"))
    while not slow.done():  # drive the clock until the attempt's timeout fires
        await clock.advance(0.5)
    with pytest.raises(AttemptTimeout):
        await slow
    await service.clients.stop()

    identity.assert_called("POST", "/v1/notifications", times=1)
    identity.assert_called("GET", "/v1/x", times=2)


async def test_a_failing_service_opens_its_breaker_and_then_fails_fast() -> None:
    service = courses_service(client_retries=0)
    fakes = FakeServices()
    identity = fakes.add("identity", {"GET /v1/users/{user_id}": user})
    fakes.install(service)
    identity.fail(500, times=None)
    async with service_client(service) as http:
        failing = [await http.get(f"/owner/{n}") for n in range(5)]
        fast = await http.get("/owner/9")
        received = len(identity.calls)
    client = service.client("identity")

    assert [r.status_code for r in failing] == [503] * 5
    assert (fast.status_code, fast.json()["code"]) == (503, "circuit-open")
    assert "retry-after" in fast.headers
    assert received == 5  # the sixth call never left
    assert client.breaker.state is BreakerState.OPEN


async def test_instances_come_and_go_through_the_fake_registry() -> None:
    service = create_service("courses", "1.0.0", settings=load_settings())
    client = service.client("identity")
    fakes = FakeServices()
    identity = fakes.add("identity", {"GET /v1/x": {"ok": True}})
    fakes.install(service)
    await client.get_json("/v1/x")
    only = identity.instances[0]
    fakes.registry.remove("identity", only.id)
    await asyncio.sleep(0)  # the watch delivers the change
    with pytest.raises(NoInstances):
        await client.get_json("/v1/x")
    fakes.registry.put(Instance("identity", only.id, only.address, only.port))
    await asyncio.sleep(0)
    assert await client.get_json("/v1/x") == {"ok": True}
    await service.clients.stop()


async def test_another_service_can_be_the_fake_with_real_service_tokens() -> None:
    identity_keys = FakeIdentity()
    users = create_service("identity", "1.0.0", settings=load_settings())

    @users.router.get("/v1/me")
    async def me(who: Principal = require()) -> dict[str, str]:
        return {"subject": who.subject, "kind": who.kind}

    identity_keys.install(users)
    service = create_service("courses", "1.0.0", settings=load_settings())
    identity_keys.install(service)
    client = service.client("identity")
    fakes = FakeServices()
    fakes.add("identity", users)
    fakes.install(service)

    assert await client.get_json("/v1/me") == {"subject": "courses", "kind": "service"}
    await service.clients.stop()


async def test_assertions_fail_with_what_was_called() -> None:
    fakes = FakeServices()
    identity = fakes.add("identity", {"GET /v1/x": {}})
    with pytest.raises(AssertionError, match="got no GET /v1/y"):
        identity.assert_called("GET", "/v1/y")
    identity.assert_not_called()
    with pytest.raises(ValueError, match="no instance"):
        identity.fail(instance="identity-9")
    with pytest.raises(ValueError, match="exists already"):
        fakes.add("identity", {})


async def test_a_circuit_open_on_every_instance_is_a_503() -> None:
    service = create_service("courses", "1.0.0", settings=load_settings())
    client = service.client("identity", retries=0)
    fakes = FakeServices()
    fakes.add("identity", {"GET /v1/x": {}}, instances=2)
    fakes.install(service)
    for instance in ("identity-1", "identity-2"):
        breaker = service.clients.breakers.get("identity", instance)
        breaker.transition_to_forced_open_state()
    with pytest.raises(CircuitOpen):
        await client.get_json("/v1/x")
    await service.clients.stop()
    with pytest.raises(UpstreamUnavailable):
        raise UpstreamUnavailable("identity", "x", received_status=503)
