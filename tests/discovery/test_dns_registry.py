"""Kubernetes DNS against a real dnsmasq: SRV ports, A fallback, TTL cache, outages."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.discovery.conftest import (
    COURSES_HOSTS,
    COURSES_SRV,
    NAMESPACE,
    DnsServer,
    free_port,
    start_dnsmasq,
)

from lms_shared.discovery import RegistryUnavailable, registry_from_url
from lms_shared.discovery._dns import KubernetesDnsRegistry
from lms_shared.testing import ManualClock


def dns_registry(url: str, clock: ManualClock) -> KubernetesDnsRegistry:
    registry = registry_from_url(url, clock=clock, state_dir=Path("."))
    assert isinstance(registry, KubernetesDnsRegistry)
    return registry


@pytest.fixture
def own_dns() -> Iterator[list[DnsServer]]:
    """dnsmasq servers this test starts (and restarts); all stopped at the end."""
    servers: list[DnsServer] = []
    try:
        yield servers
    finally:
        for server in servers:
            server.stop()


async def test_srv_records_give_ports_and_target_addresses(dns_server: DnsServer) -> None:
    registry = dns_registry(dns_server.url(), ManualClock())
    await registry.start()
    try:
        courses = await registry.lookup("courses")
        assert [(i.address, i.port) for i in courses] == [
            ("127.0.0.21", 8001),
            ("127.0.0.22", 8002),
        ]
        assert dict(courses[0].metadata) == {
            "dns_name": f"pod-a.courses.{NAMESPACE}.svc.cluster.local"
        }
        assert all(i.version is None and i.registered_at is None for i in courses)
    finally:
        await registry.stop()


async def test_without_srv_records_the_a_records_and_default_port_are_used(
    dns_server: DnsServer,
) -> None:
    registry = dns_registry(dns_server.url(port="9090"), ManualClock())
    await registry.start()
    try:
        identity = await registry.lookup("identity")
        assert [i.endpoint for i in identity] == ["127.0.0.31:9090", "127.0.0.32:9090"]
    finally:
        await registry.stop()


async def test_another_port_name_asks_for_its_own_srv_records(dns_server: DnsServer) -> None:
    registry = dns_registry(dns_server.url(port_name="grpc"), ManualClock())
    await registry.start()
    try:
        # no _grpc._tcp records and no A record for the service name: nothing
        assert await registry.lookup("courses") == []
    finally:
        await registry.stop()


async def test_answers_are_cached_for_their_ttl_on_the_clock(own_dns: list[DnsServer]) -> None:
    port = free_port()
    own_dns.append(start_dnsmasq(hosts=COURSES_HOSTS, srv=COURSES_SRV, ttl=30, port=port))
    clock = ManualClock()
    registry = dns_registry(own_dns[0].url(), clock)
    await registry.start()
    try:
        assert len(await registry.lookup("courses")) == 2
        # the server is replaced by one where pod-b is gone
        own_dns[0].stop()
        own_dns.append(start_dnsmasq(hosts=COURSES_HOSTS, srv=COURSES_SRV[:1], ttl=30, port=port))
        await clock.advance(29)
        assert len(await registry.lookup("courses")) == 2  # still the cached answer
        await clock.advance(1.5)
        assert [i.port for i in await registry.lookup("courses")] == [8001]
    finally:
        await registry.stop()


async def test_an_unreachable_resolver_is_registry_unavailable() -> None:
    port = free_port()  # nothing listens there
    registry = dns_registry(f"dns://127.0.0.1:{port}/{NAMESPACE}?timeout=0.5", ManualClock())
    await registry.start()
    try:
        with pytest.raises(RegistryUnavailable) as caught:
            await registry.lookup("courses")
        assert caught.value.status == 503
        assert caught.value.backend == "k8s"
        with pytest.raises(RegistryUnavailable):
            await registry.ping()
    finally:
        await registry.stop()


async def test_lookups_before_start_are_registry_unavailable(dns_server: DnsServer) -> None:
    registry = dns_registry(dns_server.url(), ManualClock())
    with pytest.raises(RegistryUnavailable, match="not started"):
        await registry.lookup("courses")


async def test_services_found_by_lookups_are_listed(dns_server: DnsServer) -> None:
    registry = dns_registry(dns_server.url(), ManualClock())
    await registry.start()
    try:
        assert await registry.list_services() == []
        await registry.lookup("identity")
        await registry.lookup("grading")  # nothing there: not listed
        assert await registry.list_services() == ["identity"]
    finally:
        await registry.stop()


async def test_a_watch_sees_dns_change_once_the_cached_answer_expires(
    own_dns: list[DnsServer],
) -> None:
    port = free_port()
    own_dns.append(start_dnsmasq(hosts=COURSES_HOSTS, srv=COURSES_SRV, ttl=3, port=port))
    clock = ManualClock()
    registry = dns_registry(own_dns[0].url(poll="1"), clock)
    await registry.start()
    snapshots = registry.watch("courses")
    try:
        assert [i.port for i in await anext(snapshots)] == [8001, 8002]
        own_dns[0].stop()
        own_dns.append(start_dnsmasq(hosts=COURSES_HOSTS, srv=COURSES_SRV[1:], ttl=3, port=port))
        pending = asyncio.ensure_future(anext(snapshots))
        deadline = time.monotonic() + 10
        while not pending.done():
            assert time.monotonic() < deadline, "the watch never saw the change"
            await clock.advance(1)
            await asyncio.wait({pending}, timeout=0.05)
        assert [i.port for i in pending.result()] == [8002]
        assert clock.monotonic() >= 3  # not before the answer's TTL ran out
    finally:
        await snapshots.aclose()
        await registry.stop()
