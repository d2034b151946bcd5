"""etcd under faults: a killed member, a killed instance, no member at all.

The cluster is three private etcd members on loopback (``/usr/bin/etcd``),
started for the test and stopped by pid in a finally. Lease expiry is
etcd's real clock, so the waits are bounded polls; the registry's own
keepalives and reconnect backoff run on a ManualClock the test drives.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import pytest
from tests.discovery.conftest import EtcdCluster, free_port, stop_process

from lms_shared.discovery import (
    Discovery,
    Instance,
    RegistryUnavailable,
    RoundRobin,
    registry_from_url,
)
from lms_shared.testing import ManualClock

T = TypeVar("T")


async def driven(
    clock: ManualClock, check: Callable[[], Awaitable[T | None]], *, timeout: float
) -> T:
    """Poll ``check`` while advancing the clock (keepalives, backoff), bounded in real time."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = await check()
        except RegistryUnavailable:
            result = None
        if result is not None:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout}s")
        await clock.advance(0.25)
        await asyncio.sleep(0.05)


async def test_a_cluster_with_a_killed_member_keeps_serving_and_a_killed_instance_leaves(
    etcd_cluster: EtcdCluster, killable_instance: Callable[..., Any]
) -> None:
    clock = ManualClock(datetime.now(UTC))
    url = etcd_cluster.url(f"/lms-test/{uuid.uuid4().hex}")
    discovery = Discovery(
        registry_from_url(url, clock=clock, state_dir=Path(".")),
        clock=clock,
        balancer_factory=lambda _: RoundRobin(),
    )
    await discovery.start()
    steady = discovery.register_self(Instance("courses", "steady", "127.0.0.21", 8001), ttl=10)
    await steady.start()
    try:
        doomed = killable_instance(url, "courses", "doomed", 8002, 2.0)

        async def both() -> list[str] | None:
            ids = [i.id for i in await discovery.instances("courses")]
            return ids if ids == ["doomed", "steady"] else None

        await driven(clock, both, timeout=10)

        # kill the member the registry talks to first
        etcd_cluster.kill(etcd_cluster.members[0])
        assert [i.id for i in await discovery.instances("courses")] == ["doomed", "steady"]

        async def looked_up() -> list[str] | None:
            ids = [i.id for i in await discovery.registry.lookup("courses")]
            return ids or None

        assert await driven(clock, looked_up, timeout=10) == ["doomed", "steady"]

        # the two members left still take registrations, and the watch follows
        late = discovery.register_self(Instance("courses", "late", "127.0.0.23", 8003), ttl=10)
        await driven(clock, lambda: _started(late), timeout=10)

        async def three() -> list[str] | None:
            ids = [i.id for i in await discovery.instances("courses")]
            return ids if ids == ["doomed", "late", "steady"] else None

        await driven(clock, three, timeout=10)

        # a killed instance's lease runs out: it leaves lookups and the cache
        stop_process(doomed, kill=True)
        killed_at = time.monotonic()

        async def gone() -> list[str] | None:
            ids = [i.id for i in await discovery.instances("courses")]
            return ids if ids == ["late", "steady"] else None

        await driven(clock, gone, timeout=2.0 + 5)
        assert time.monotonic() - killed_at < 2.0 + 5
        assert [i.id for i in await discovery.registry.lookup("courses")] == ["late", "steady"]
        picks = {(await discovery.resolve("courses")).id for _ in range(4)}
        assert picks == {"late", "steady"}
        await late.stop()
    finally:
        await steady.stop()
        await discovery.stop()


async def _started(component: Any) -> bool | None:
    await component.start()
    return True


async def test_no_member_answering_is_registry_unavailable_naming_the_endpoints() -> None:
    ports = [free_port(), free_port()]
    url = f"etcd://127.0.0.1:{ports[0]},127.0.0.1:{ports[1]}?timeout=1"
    registry = registry_from_url(url, clock=ManualClock(), state_dir=Path("."))
    await registry.start()
    try:
        with pytest.raises(RegistryUnavailable) as caught:
            await registry.lookup("courses")
        assert caught.value.status == 503
        assert caught.value.headers["Retry-After"] == "1"
        assert str(ports[0]) in str(caught.value)
        assert str(ports[1]) in str(caught.value)
        with pytest.raises(RegistryUnavailable):
            await registry.ping()
        with pytest.raises(RegistryUnavailable):
            await registry.register(Instance("courses", "c", "127.0.0.1", 1), ttl=5)
    finally:
        await registry.stop()


async def test_a_dead_first_endpoint_fails_over_to_the_next(etcd_server: EtcdCluster) -> None:
    dead = free_port()
    alive = etcd_server.members[0].client_port
    prefix = f"/lms-test/{uuid.uuid4().hex}"
    url = f"etcd://127.0.0.1:{dead},127.0.0.1:{alive}?prefix={prefix}"
    registry = registry_from_url(url, clock=ManualClock(), state_dir=Path("."))
    await registry.start()
    try:
        registration = await registry.register(Instance("courses", "c", "127.0.0.1", 1), ttl=10)
        assert [i.id for i in await registry.lookup("courses")] == ["c"]
        await registration.close()
        assert await registry.lookup("courses") == []
    finally:
        await registry.stop()


async def test_a_registry_that_is_not_started_says_so() -> None:
    registry = registry_from_url("etcd://127.0.0.1:1", clock=ManualClock(), state_dir=Path("."))
    with pytest.raises(RegistryUnavailable, match="not started"):
        await registry.lookup("courses")
