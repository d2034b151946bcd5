"""The client against real uvicorn instances found through a real registry (local, etcd).

Three instances of a small FastAPI app on loopback are registered in the
registry; a service built with ``create_service`` calls them through
``service.client("inventory")``. One instance is then killed (its socket
closed, its connections dropped): reads move to the others, the killed
instance's breaker opens, and a POST without an idempotency key is not
sent twice.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from lms_shared import Service, create_service, load_settings
from lms_shared.client import ServiceUnreachable, UpstreamUnavailable
from lms_shared.clock import SystemClock
from lms_shared.discovery import Instance, Registry, registry_from_url
from lms_shared.resilience import BreakerState
from lms_shared.testing import lifespan

from .conftest import Counter, Running, bind, instance_app


@pytest.fixture(params=["local", "etcd"])
def registry_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "local":
        return f"local://{tmp_path / 'registry.sqlite3'}"
    etcd: str = request.getfixturevalue("etcd_url")
    return f"{etcd}?prefix=/lms-client-test/{uuid.uuid4().hex}"


async def _registry(url: str, tmp_path: Path) -> Registry:
    registry = registry_from_url(url, clock=SystemClock(), state_dir=tmp_path)
    await registry.start()
    return registry


@pytest.fixture
async def inventory(
    servers: Callable[..., Any], registry_url: str, tmp_path: Path
) -> AsyncIterator[tuple[list[Running], list[Counter], Registry]]:
    """Three inventory instances, serving and registered."""
    registry = await _registry(registry_url, tmp_path)
    running, counters = [], []
    try:
        for n in range(3):
            app, counter = instance_app(f"i{n}")
            server = await servers(app)
            await registry.register(
                Instance("inventory", f"i{n}", "127.0.0.1", server.port), ttl=30
            )
            running.append(server)
            counters.append(counter)
        yield running, counters, registry
    finally:
        await registry.stop()


def shop(registry_url: str, **settings: Any) -> Service:
    return create_service(
        "shop",
        "1.0.0",
        settings=load_settings(
            discovery_url=registry_url, discovery_balancer="round_robin", **settings
        ),
    )


async def test_calls_are_balanced_across_the_registered_instances(
    inventory: tuple[list[Running], list[Counter], Registry], registry_url: str
) -> None:
    _, counters, _ = inventory
    service = shop(registry_url)
    client = service.client("inventory")
    async with lifespan(service.app):
        answers = [await client.get_json("/whoami") for _ in range(30)]

    assert sorted({a["instance"] for a in answers}) == ["i0", "i1", "i2"]
    assert [c.hits for c in counters] == [10, 10, 10]  # round robin
    assert client._http is None  # the pool was closed with the service


async def test_a_killed_instance_sends_reads_elsewhere_and_opens_its_breaker(
    inventory: tuple[list[Running], list[Counter], Registry], registry_url: str
) -> None:
    running, counters, _ = inventory
    service = shop(registry_url)
    client = service.client("inventory")
    async with lifespan(service.app):
        for _ in range(6):  # warm: two calls each, connections pooled
            await client.get_json("/whoami")
        await running[1].kill()
        answers = [(await client.get_json("/whoami"))["instance"] for _ in range(30)]
        breaker = client.instance_breaker("i1")
        others = [client.instance_breaker(f"i{n}") for n in (0, 2)]
        service_breaker = client.breaker.state

    assert answers.count("i1") == 0  # every read answered, by the living instances
    assert breaker is not None
    assert breaker.state is BreakerState.OPEN
    assert breaker.metrics().failed_calls <= 5  # it left the pool within a handful of calls
    assert all(b is not None and b.state is BreakerState.CLOSED for b in others)
    assert service_breaker is BreakerState.CLOSED  # the service as a whole is fine
    assert counters[0].hits + counters[2].hits == 4 + 30


async def test_a_post_without_idempotency_key_is_not_retried(
    inventory: tuple[list[Running], list[Counter], Registry], registry_url: str
) -> None:
    running, counters, _ = inventory
    service = shop(registry_url)
    client = service.client("inventory")
    async with lifespan(service.app):
        await running[1].kill()
        failures = 0
        for _ in range(3):  # round robin: one of the three goes to the dead instance
            try:
                await client.post_json("/items", {"sku": "a"})
            except ServiceUnreachable:
                failures += 1
        keyed = [
            await client.post_json("/items", {"sku": "b"}, idempotency_key=f"k-{n}")
            for n in range(3)
        ]

    assert failures == 1
    assert counters[0].posts + counters[2].posts == 2 + 3  # nothing sent twice
    assert all(answer["instance"] in ("i0", "i2") for answer in keyed)  # keyed: retried


async def test_a_503_is_retried_for_reads_and_not_for_posts(
    inventory: tuple[list[Running], list[Counter], Registry], registry_url: str
) -> None:
    _, counters, _ = inventory
    service = shop(registry_url, client_retries=2)
    client = service.client("inventory")
    async with lifespan(service.app):
        with pytest.raises(UpstreamUnavailable) as read:
            await client.get_json("/unavailable")
        with pytest.raises(UpstreamUnavailable) as write:
            await client.post_json("/unavailable", {})

    assert sum(c.hits for c in counters) == 3  # three attempts, one per instance
    assert sorted(c.hits for c in counters) == [1, 1, 1]
    assert sum(c.posts for c in counters) == 1
    assert read.value.received_status == write.value.received_status == 503
    assert read.value.status == 503
    assert read.value.received_code == "service-unavailable"


async def test_a_service_registers_itself_while_it_runs(
    servers: Callable[..., Any], registry_url: str, tmp_path: Path
) -> None:
    sock = bind()
    port = sock.getsockname()[1]
    callee = create_service(
        "stock",
        "2.1.0",
        settings=load_settings(
            discovery_url=registry_url, discovery_address="127.0.0.1", discovery_port=port
        ),
    )

    @callee.router.get("/ping")
    async def ping() -> dict[str, str]:
        return {"from": "stock"}

    caller = shop(registry_url)
    client = caller.client("stock")
    registry = await _registry(registry_url, tmp_path)
    try:
        server = await servers(callee.app, lifespan="on", sock=sock)
        async with lifespan(caller.app):
            registered = await registry.lookup("stock")
            answer = await client.get_json("/ping")
        await server.stop()  # a graceful stop: the lifespan deregisters
        after = await registry.lookup("stock")
    finally:
        await registry.stop()

    assert [(i.id, i.port, i.version) for i in registered] == [(f"127.0.0.1:{port}", port, "2.1.0")]
    assert answer == {"from": "stock"}
    assert after == []
