"""The Discovery facade on the local registry: cache, resolve, calls, self-registration."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from lms_shared.discovery import (
    ConsistentHash,
    Discovery,
    DiscoveryConfig,
    Instance,
    NoInstances,
    OutlierEjection,
    PowerOfTwoEWMA,
    RegistryUnavailable,
    RoundRobin,
    SelfRegistration,
    ZonePreference,
    default_balancer,
    registry_from_url,
)
from lms_shared.errors import ServiceUnavailable
from lms_shared.lifecycle import Component, Lifecycle
from lms_shared.settings import load_settings
from lms_shared.testing import ManualClock, capture_logs


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(datetime.now(UTC))


@pytest.fixture
async def discovery(tmp_path: Path, clock: ManualClock) -> AsyncIterator[Discovery]:
    registry = registry_from_url(None, clock=clock, state_dir=tmp_path)
    facade = Discovery(registry, clock=clock, balancer_factory=lambda _: RoundRobin())
    await facade.start()
    try:
        yield facade
    finally:
        await facade.stop()


async def until(clock: ManualClock, condition: object, *, timeout: float = 10) -> None:
    """Drive the clock until ``condition()`` (an async callable) is true; bounded."""
    deadline = time.monotonic() + timeout
    while not await condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            pytest.fail("condition not met in time")
        await clock.advance(0.5)
        await asyncio.sleep(0.01)


async def test_register_self_is_a_lifecycle_component_that_registers_and_deregisters(
    discovery: Discovery, clock: ManualClock
) -> None:
    me = Instance("courses", "c-1", "127.0.0.1", 8001, version="1.4.0")
    component = discovery.register_self(me, ttl=10)
    assert isinstance(component, Component)
    lifecycle = Lifecycle(timeout=5)
    lifecycle.add(component)
    await lifecycle.start()
    assert component.registration is not None
    assert [i.id for i in await discovery.registry.lookup("courses")] == ["c-1"]
    assert await lifecycle.stop() == []
    assert component.registration is None
    assert await discovery.registry.lookup("courses") == []


async def test_the_cache_answers_from_memory_and_follows_changes(
    discovery: Discovery, clock: ManualClock
) -> None:
    assert await discovery.instances("courses") == []
    other = await discovery.registry.register(Instance("courses", "a", "127.0.0.1", 1), ttl=10)

    async def seen() -> bool:
        return [i.id for i in await discovery.instances("courses")] == ["a"]

    await until(clock, seen)
    await other.set_healthy(False)

    async def hidden() -> bool:
        return await discovery.instances("courses") == []

    await until(clock, hidden)
    await other.close()


async def test_resolve_without_instances_is_a_503_naming_the_service(
    discovery: Discovery,
) -> None:
    with pytest.raises(NoInstances) as caught:
        await discovery.resolve("grading")
    assert isinstance(caught.value, ServiceUnavailable)
    assert caught.value.service == "grading"
    assert caught.value.status == 503
    assert caught.value.extensions == {"service": "grading"}
    assert "grading" in str(caught.value)


async def test_the_first_lookup_failing_is_registry_unavailable(
    tmp_path: Path, clock: ManualClock
) -> None:
    registry = registry_from_url(None, clock=clock, state_dir=tmp_path)
    facade = Discovery(registry, clock=clock)  # never started
    with pytest.raises(RegistryUnavailable):
        await facade.instances("courses")
    with pytest.raises(RegistryUnavailable):
        await facade.ping()


async def test_one_of_two_instances_killed_moves_traffic_within_a_handful_of_calls(
    tmp_path: Path, clock: ManualClock
) -> None:
    config = DiscoveryConfig(state_dir=tmp_path, balancer="round_robin", failures=3, ejection=30)
    facade = Discovery.from_config(config, clock=clock)
    await facade.start()
    try:
        for name in ("a", "b"):
            await facade.registry.register(Instance("courses", name, "127.0.0.1", 1), ttl=60)
        killed = "b"
        sent = []
        for _ in range(12):
            call = await facade.begin("courses")
            sent.append(call.instance.id)
            try:
                with call:
                    if call.instance.id == killed:
                        raise ConnectionError("connection refused")
            except ConnectionError:
                pass
        assert sent[:6] == ["a", "b"] * 3  # three failures of b ...
        assert set(sent[6:]) == {"a"}  # ... and b is ejected
        # after the cool-down it is tried again
        await clock.advance(30)
        tried = {(await facade.begin("courses")).instance.id for _ in range(2)}
        assert tried == {"a", "b"}
    finally:
        await facade.stop()


async def test_a_call_reports_latency_and_outcome_once(
    discovery: Discovery, clock: ManualClock
) -> None:
    await discovery.registry.register(Instance("courses", "a", "127.0.0.1", 1), ttl=60)
    balancer = PowerOfTwoEWMA(clock=clock)
    call = await discovery.begin("courses", balancer=balancer)
    await clock.advance(0.25)
    assert call.end(ok=True) == pytest.approx(0.25)
    assert balancer.latency(call.instance) == pytest.approx(0.25)
    call.end(ok=False)  # ignored
    assert balancer.cost(call.instance) == pytest.approx(0.25)


async def test_a_key_is_sticky_with_the_default_balancer(
    tmp_path: Path, clock: ManualClock
) -> None:
    facade = Discovery.from_config(DiscoveryConfig(state_dir=tmp_path), clock=clock)
    await facade.start()
    try:
        for name in "abcde":
            await facade.registry.register(Instance("grading", name, "127.0.0.1", 1), ttl=60)
        owners = {(await facade.resolve("grading", key="course-7")).id for _ in range(10)}
        assert len(owners) == 1
    finally:
        await facade.stop()


def test_the_default_balancer_stacks_ejection_zone_hash_and_policy() -> None:
    clock = ManualClock()
    balancer = default_balancer(DiscoveryConfig(zone="eu-1", failures=2), clock=clock)
    assert isinstance(balancer, OutlierEjection)
    assert balancer.consecutive_failures == 2
    assert isinstance(balancer.inner, ZonePreference)
    assert isinstance(balancer.inner.inner, ConsistentHash)
    assert isinstance(balancer.inner.inner.fallback, PowerOfTwoEWMA)
    plain = default_balancer(DiscoveryConfig(balancer="round_robin"), clock=clock)
    assert isinstance(plain, OutlierEjection)
    assert isinstance(plain.inner, ConsistentHash)
    assert isinstance(plain.inner.fallback, RoundRobin)


def test_the_config_comes_from_the_settings(tmp_path: Path) -> None:
    settings = load_settings(
        discovery_url="etcd://127.0.0.1:2379",
        state_dir=tmp_path,
        discovery_ttl=4,
        discovery_balancer="least_outstanding",
        discovery_zone="eu-1",
        discovery_address="10.0.0.5",
        discovery_port=8001,
        discovery_failures=7,
        discovery_ejection=12,
    )
    config = DiscoveryConfig.from_settings(settings)
    assert (config.url, config.ttl, config.balancer, config.failures, config.ejection) == (
        "etcd://127.0.0.1:2379",
        4,
        "least_outstanding",
        7,
        12,
    )
    me = config.self_instance("courses", "1.0.0")
    assert me == Instance("courses", "10.0.0.5:8001", "10.0.0.5", 8001, "1.0.0", "eu-1")
    assert DiscoveryConfig().self_instance("courses") is None
    with pytest.raises(ValueError, match="LMS_DISCOVERY_PORT"):
        DiscoveryConfig(address="10.0.0.5").self_instance("courses")


async def test_read_only_registries_skip_self_registration_and_say_why(
    clock: ManualClock,
) -> None:
    registry = registry_from_url("static://courses=127.0.0.1:8001", clock=clock, state_dir=Path())
    facade = Discovery(registry, clock=clock)
    await facade.start()
    component = facade.register_self(Instance("courses", "me", "127.0.0.1", 9), ttl=5)
    with capture_logs() as logs:
        await component.start()
    assert component.registration is None
    [said] = logs.events("registry is read-only; not registering")
    assert said["backend"] == "static"
    await component.set_healthy(False)  # nothing registered: nothing to change
    await component.stop()
    assert [i.endpoint for i in await facade.instances("courses")] == ["127.0.0.1:8001"]
    await facade.stop()
    with pytest.raises(ValueError, match="ttl"):
        SelfRegistration(registry, Instance("courses", "me", "127.0.0.1", 9), ttl=0)


async def test_an_empty_cache_finds_an_instance_registered_since_the_last_poll(
    discovery: Discovery, clock: ManualClock
) -> None:
    # a caller started beside its callee: its first lookup came too early
    assert await discovery.instances("enrollments") == []
    registration = await discovery.registry.register(
        Instance("enrollments", "e-1", "127.0.0.1", 8002), ttl=30
    )
    try:
        await clock.advance(0.3)  # well inside the watch's 2 s poll interval
        assert [i.id for i in await discovery.instances("enrollments")] == ["e-1"]
        assert (await discovery.resolve("enrollments")).id == "e-1"
    finally:
        await registration.close()


async def test_an_empty_cache_is_not_looked_up_on_every_call(
    discovery: Discovery, clock: ManualClock
) -> None:
    assert await discovery.instances("enrollments") == []
    lookups = 0
    lookup = discovery.registry.lookup

    async def counting(service: str) -> list[Instance]:
        nonlocal lookups
        lookups += 1
        return await lookup(service)

    discovery.registry.lookup = counting  # type: ignore[method-assign]
    for _ in range(50):
        assert await discovery.instances("enrollments") == []
    assert lookups == 0  # the clock did not move: the cache answers
    await clock.advance(0.3)
    for _ in range(50):
        await discovery.instances("enrollments")
    assert lookups == 1
