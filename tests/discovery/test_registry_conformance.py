"""The registry contract, run against every backend and its real server.

* static: the settings' list (read-only);
* local: the SQLite file under the state folder;
* etcd: a private etcd 3.4 member (``/usr/bin/etcd``), a prefix per test;
* k8s: Kubernetes DNS records served by a private dnsmasq on loopback (read-only).

Read-only backends have ``courses`` and ``identity`` already (in the
settings, in DNS); writable ones get the same two services registered by
the ``populated`` fixture, so the read tests are the same for all. Write
tests first check that read-only backends refuse with ``RegistryReadOnly``
and only then skip them. Time is a ManualClock; where etcd's own lease
clock matters the test waits on a bounded poll.
"""

from __future__ import annotations

import asyncio
import base64
import sqlite3
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from tests.discovery.conftest import DnsServer, EtcdCluster, stop_process

from lms_shared.discovery import (
    Instance,
    Registration,
    Registry,
    RegistryReadOnly,
    registry_from_url,
)
from lms_shared.testing import ManualClock

T = TypeVar("T")

COURSES = [("127.0.0.21", 8001), ("127.0.0.22", 8002)]
IDENTITY = [("127.0.0.31", 80), ("127.0.0.32", 80)]
STATIC = "static://courses=127.0.0.21:8001,127.0.0.22:8002;identity=127.0.0.31:80,127.0.0.32:80"


@dataclass
class Harness:
    """One backend under test, with the hooks its server needs."""

    kind: str
    registry: Registry
    clock: ManualClock
    url: str
    etcd: EtcdCluster | None = None
    prefix: str = ""
    db_path: Path | None = None

    async def pump(self, awaitable: Awaitable[T], *, timeout: float = 10.0, step: float = 0.5) -> T:
        """Await while driving the clock (polls and backoff run on it)."""
        task = asyncio.ensure_future(awaitable)
        deadline = time.monotonic() + timeout
        while not task.done():
            if time.monotonic() > deadline:
                task.cancel()
                pytest.fail(f"nothing arrived within {timeout}s")
            await self.clock.advance(step)
            await asyncio.wait({task}, timeout=0.02)
        return task.result()

    async def write_raw(self, service: str, instance_id: str, value: bytes) -> None:
        """Store ``value`` as a record behind the registry's back (another process)."""
        if self.kind == "local":
            assert self.db_path is not None
            with sqlite3.connect(self.db_path) as db:
                db.execute(
                    "INSERT INTO lms_instances VALUES (?, ?, ?, ?)",
                    (service, instance_id, value.decode(errors="replace"), time.time() + 10**6),
                )
            return
        assert self.etcd is not None
        key = f"{self.prefix}/{service}/{instance_id}".encode()
        async with httpx.AsyncClient() as client:
            answer = await client.post(
                self.etcd.endpoints[0] + "/v3/kv/put",
                json={
                    "key": base64.b64encode(key).decode(),
                    "value": base64.b64encode(value).decode(),
                },
            )
            answer.raise_for_status()

    async def lose(self, registration: Registration) -> None:
        """Make the entry vanish as if it had expired while the process hung."""
        if self.kind == "local":
            while self.clock.sleepers == 0:  # the keepalive waits for its next renewal
                await asyncio.sleep(0.01)
            # jump past the expiry: the renewal that wakes finds the entry expired
            await self.clock.advance(registration.ttl + 1)
            return
        assert self.etcd is not None
        async with httpx.AsyncClient() as client:
            answer = await client.post(
                self.etcd.endpoints[0] + "/v3/lease/revoke", json={"ID": registration.handle}
            )
            answer.raise_for_status()


@pytest.fixture(params=["static", "local", "etcd", "k8s"])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Harness]:
    clock = ManualClock(datetime.now(UTC))
    kind = request.param
    extra: dict[str, Any] = {}
    if kind == "static":
        url = STATIC
    elif kind == "local":
        extra["db_path"] = tmp_path / "registry" / "discovery.sqlite3"
        url = f"local://{extra['db_path']}?poll=1"
    elif kind == "etcd":
        etcd: EtcdCluster = request.getfixturevalue("etcd_server")
        extra["prefix"] = f"/lms-test/{uuid.uuid4().hex}"
        extra["etcd"] = etcd
        url = etcd.url(extra["prefix"])
    else:
        dns: DnsServer = request.getfixturevalue("dns_server")
        url = dns.url(services="courses,identity", poll="1", timeout="2")
    registry = registry_from_url(url, clock=clock, state_dir=tmp_path)
    await registry.start()
    try:
        yield Harness(kind, registry, clock, url, **extra)
    finally:
        await registry.stop()


@pytest.fixture
async def populated(backend: Harness) -> AsyncIterator[list[Registration]]:
    """``courses`` and ``identity`` with two instances each, whatever the backend."""
    registrations: list[Registration] = []
    if not backend.registry.read_only:
        for service, endpoints in (("courses", COURSES), ("identity", IDENTITY)):
            for address, port in endpoints:
                instance = Instance(service, f"{address}:{port}", address, port)
                registrations.append(await backend.registry.register(instance, ttl=30))
    try:
        yield registrations
    finally:
        for registration in registrations:
            await registration.close()


async def writable(backend: Harness) -> None:
    """Skip a write test on a read-only backend, after checking it refuses writes."""
    if backend.registry.read_only:
        some = Instance("courses", "x", "127.0.0.1", 9000)
        with pytest.raises(RegistryReadOnly) as refused:
            await backend.registry.register(some, ttl=5)
        assert refused.value.backend == backend.registry.name
        with pytest.raises(RegistryReadOnly):
            await backend.registry.deregister(some)
        pytest.skip(f"{backend.kind} is read-only: writes are refused with RegistryReadOnly")


def endpoints(instances: list[Instance]) -> list[tuple[str, int]]:
    return [(i.address, i.port) for i in instances]


# -- reads: every backend ----------------------------------------------------


async def test_lookup_finds_every_instance_sorted_by_id(
    backend: Harness, populated: list[Registration]
) -> None:
    courses = await backend.registry.lookup("courses")
    assert endpoints(courses) == COURSES
    assert [i.id for i in courses] == ["127.0.0.21:8001", "127.0.0.22:8002"]
    assert all(i.service == "courses" and i.healthy for i in courses)
    assert endpoints(await backend.registry.lookup("identity")) == IDENTITY


async def test_an_unknown_service_has_no_instances(
    backend: Harness, populated: list[Registration]
) -> None:
    assert await backend.registry.lookup("grading") == []


async def test_a_malformed_service_name_is_refused(backend: Harness) -> None:
    for bad in ("Courses", "a/b", "", "x" * 64, "-x"):
        with pytest.raises(ValueError, match="DNS label"):
            await backend.registry.lookup(bad)


async def test_list_services_names_the_services_with_instances(
    backend: Harness, populated: list[Registration]
) -> None:
    assert await backend.registry.list_services() == ["courses", "identity"]


async def test_ping_answers(backend: Harness) -> None:
    await backend.registry.ping()


async def test_watch_yields_the_current_instances_and_ends_when_the_registry_stops(
    backend: Harness, populated: list[Registration]
) -> None:
    snapshots = backend.registry.watch("courses")
    first = await backend.pump(anext(snapshots))
    assert endpoints(first) == COURSES
    pending = asyncio.ensure_future(anext(snapshots))
    await backend.registry.stop()
    with pytest.raises(StopAsyncIteration):
        await backend.pump(pending)
    await backend.registry.start()


# -- writes: writable backends (read-only ones must refuse them) -------------


async def test_register_stores_every_field_and_the_registration_time(backend: Harness) -> None:
    await writable(backend)
    instance = Instance(
        "grading", "g-1", "127.0.0.5", 8100, version="1.4.0", zone="eu-1", metadata={"a": "b"}
    )
    registration = await backend.registry.register(instance, ttl=30)
    try:
        [found] = await backend.registry.lookup("grading")
        assert found == registration.instance
        assert (found.version, found.zone, dict(found.metadata)) == ("1.4.0", "eu-1", {"a": "b"})
        assert found.registered_at == backend.clock.now()
        assert registration.active
    finally:
        await registration.close()
    assert not registration.active
    assert await backend.registry.lookup("grading") == []
    await registration.close()  # idempotent


async def test_registering_the_same_id_again_replaces_the_entry(backend: Harness) -> None:
    await writable(backend)
    first = await backend.registry.register(Instance("grading", "g-1", "127.0.0.5", 1), ttl=30)
    second = await backend.registry.register(Instance("grading", "g-1", "127.0.0.6", 2), ttl=30)
    try:
        assert endpoints(await backend.registry.lookup("grading")) == [("127.0.0.6", 2)]
    finally:
        await second.close()
        await first.close()


async def test_deregister_removes_the_instance_and_ignores_unknown_ones(
    backend: Harness, populated: list[Registration]
) -> None:
    await writable(backend)
    courses = await backend.registry.lookup("courses")
    await backend.registry.deregister(courses[0])
    assert endpoints(await backend.registry.lookup("courses")) == COURSES[1:]
    await backend.registry.deregister(Instance("courses", "never-there", "127.0.0.9", 1))
    assert await backend.registry.list_services() == ["courses", "identity"]


async def test_an_unhealthy_instance_leaves_lookups_until_healthy_again(
    backend: Harness, populated: list[Registration]
) -> None:
    await writable(backend)
    sick = populated[0]
    await sick.set_healthy(False)
    assert endpoints(await backend.registry.lookup("courses")) == COURSES[1:]
    everyone = await backend.registry.lookup("courses", include_unhealthy=True)
    assert [i.healthy for i in everyone] == [False, True]
    await sick.set_healthy(True)
    assert endpoints(await backend.registry.lookup("courses")) == COURSES


async def test_the_keepalive_keeps_an_entry_past_its_ttl(backend: Harness) -> None:
    await writable(backend)
    ttl = 2.0
    registration = await backend.registry.register(
        Instance("grading", "g-1", "127.0.0.5", 8100), ttl=ttl
    )
    started = time.monotonic()
    try:
        # local expiry runs on the ManualClock; etcd's leases on real time,
        # so for etcd the loop also lets more than the ttl pass for real
        while registration.renewals < 6 or (
            backend.kind == "etcd" and time.monotonic() - started < ttl + 1
        ):
            before = registration.renewals

            async def renewed(before: int = before) -> None:
                while registration.renewals <= before:
                    await asyncio.sleep(0.01)

            await backend.pump(renewed(), step=ttl / 6)
        assert [i.id for i in await backend.registry.lookup("grading")] == ["g-1"]
        assert registration.failures == 0
    finally:
        await registration.close()


async def test_a_lost_entry_is_written_again_by_the_next_renewal(backend: Harness) -> None:
    await writable(backend)
    registration = await backend.registry.register(
        Instance("grading", "g-1", "127.0.0.5", 8100), ttl=3
    )
    try:
        await backend.lose(registration)

        if backend.kind == "etcd":  # (local: the woken renewal may already be writing)
            assert await backend.registry.lookup("grading") == []

        async def back() -> list[Instance]:
            while not (found := await backend.registry.lookup("grading")):
                await asyncio.sleep(0.01)
            return found

        [instance] = await backend.pump(back(), step=1.0)
        assert instance.id == "g-1"
        assert registration.renewals >= 1
    finally:
        await registration.close()


async def test_a_killed_instance_leaves_lookups_and_watches_within_its_ttl(
    backend: Harness, populated: list[Registration], killable_instance: Callable[..., Any]
) -> None:
    await writable(backend)
    ttl = 2.0
    process = killable_instance(backend.url, "courses", "doomed", 8003, ttl)
    snapshots = backend.registry.watch("courses")
    first = await backend.pump(anext(snapshots))
    assert [i.id for i in first][-1] == "doomed"
    stop_process(process, kill=True)
    killed_at = time.monotonic()
    if backend.kind == "local":
        # the entry's expiry is the dead process's wall clock + ttl
        await backend.clock.advance((datetime.now(UTC) - backend.clock.now()).total_seconds())
    later = await backend.pump(anext(snapshots), timeout=ttl + 5)
    assert endpoints(later) == COURSES
    assert endpoints(await backend.registry.lookup("courses")) == COURSES
    if backend.kind == "etcd":
        assert time.monotonic() - killed_at < ttl + 5
    await snapshots.aclose()


async def test_watch_follows_registrations_and_removals(
    backend: Harness, populated: list[Registration]
) -> None:
    await writable(backend)
    snapshots = backend.registry.watch("courses")
    assert endpoints(await backend.pump(anext(snapshots))) == COURSES
    extra = await backend.registry.register(Instance("courses", "z-3", "127.0.0.23", 8003), ttl=30)
    grown = await backend.pump(anext(snapshots))
    assert [i.id for i in grown] == ["127.0.0.21:8001", "127.0.0.22:8002", "z-3"]
    await extra.set_healthy(False)
    assert endpoints(await backend.pump(anext(snapshots))) == COURSES
    await extra.close()
    await populated[0].close()
    assert endpoints(await backend.pump(anext(snapshots))) == COURSES[1:]
    await snapshots.aclose()


async def test_records_another_process_corrupted_are_skipped(
    backend: Harness, populated: list[Registration]
) -> None:
    await writable(backend)
    await backend.write_raw("courses", "deep", b"[" * 10_000 + b"]" * 10_000)
    await backend.write_raw("courses", "junk", b"\xff not json")
    await backend.write_raw("courses", "lies", b'{"service": "courses", "id": "other"}')
    assert endpoints(await backend.registry.lookup("courses")) == COURSES
