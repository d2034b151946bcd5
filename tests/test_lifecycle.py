"""Components start in order, stop in reverse, each under a timeout."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from lms_shared import ComponentError, FunctionComponent, Service
from lms_shared.lifecycle import Component, Lifecycle
from lms_shared.testing import LifespanError, capture_logs, lifespan, service_client


class Recorder:
    def __init__(self, name: str, journal: list[str], *, fail: str = "", hang: str = "") -> None:
        self.name = name
        self.journal = journal
        self.fail = fail
        self.hang = hang

    async def start(self) -> None:
        if self.hang == "start":
            await asyncio.sleep(10)
        if self.fail == "start":
            raise RuntimeError(f"{self.name} cannot connect")
        self.journal.append(f"start {self.name}")

    async def stop(self) -> None:
        if self.hang == "stop":
            await asyncio.sleep(10)
        if self.fail == "stop":
            raise RuntimeError(f"{self.name} cannot close")
        self.journal.append(f"stop {self.name}")


def test_recorder_is_a_component() -> None:
    assert isinstance(Recorder("x", []), Component)


async def test_start_in_order_stop_in_reverse(make_service: Callable[..., Service]) -> None:
    journal: list[str] = []
    service = make_service()
    for name in ("database", "events", "cache"):
        service.add_component(Recorder(name, journal))

    @service.router.get("/v1/ping")
    async def ping() -> str:
        journal.append("request")
        return "pong"

    async with service_client(service) as client:
        await client.get("/v1/ping")
    assert journal == [
        "start database",
        "start events",
        "start cache",
        "request",
        "stop cache",
        "stop events",
        "stop database",
    ]


async def test_failed_start_stops_the_started_ones_and_fails_startup(
    make_service: Callable[..., Service],
) -> None:
    journal: list[str] = []
    service = make_service()
    service.add_component(Recorder("database", journal))
    service.add_component(Recorder("events", journal, fail="start"))
    service.add_component(Recorder("cache", journal))
    with pytest.raises(LifespanError, match="component 'events' failed to start"):
        async with lifespan(service.app):
            pass
    assert journal == ["start database", "stop database"]


async def test_start_timeout_names_the_component() -> None:
    journal: list[str] = []
    lifecycle = Lifecycle(timeout=0.05)
    lifecycle.add(Recorder("broker", journal, hang="start"))
    with pytest.raises(ComponentError) as info:
        await lifecycle.start()
    assert info.value.component == "broker"
    assert info.value.phase == "start"
    assert str(info.value) == "component 'broker' failed to start: timed out after 0.05s"


async def test_stop_failures_do_not_stop_the_others() -> None:
    journal: list[str] = []
    lifecycle = Lifecycle(timeout=0.05)
    lifecycle.add(Recorder("database", journal))
    lifecycle.add(Recorder("events", journal, fail="stop"))
    lifecycle.add(Recorder("cache", journal, hang="stop"))
    await lifecycle.start()
    with capture_logs() as logs:
        failures = await lifecycle.stop()
    assert [(f.component, f.phase) for f in failures] == [("cache", "stop"), ("events", "stop")]
    assert journal[-1] == "stop database"
    assert len(logs.events("component failed to stop")) == 2


def test_duplicate_and_late_components_are_refused() -> None:
    lifecycle = Lifecycle(timeout=1)
    lifecycle.add(FunctionComponent("db"))
    with pytest.raises(ValueError, match="already added"):
        lifecycle.add(FunctionComponent("db"))
    with pytest.raises(ValueError, match="positive"):
        Lifecycle(timeout=0)


async def test_components_cannot_be_added_after_start() -> None:
    lifecycle = Lifecycle(timeout=1)
    lifecycle.add(FunctionComponent("db"))
    await lifecycle.start()
    with pytest.raises(RuntimeError, match="after the service started"):
        lifecycle.add(FunctionComponent("late"))
    await lifecycle.stop()


async def test_shutdown_waits_for_in_flight_requests(make_service: Callable[..., Service]) -> None:
    journal: list[str] = []
    service = make_service()
    service.add_component(Recorder("database", journal))
    release = asyncio.Event()

    @service.router.get("/v1/slow")
    async def slow() -> str:
        journal.append("slow started")
        await release.wait()
        journal.append("slow finished")
        return "done"

    async with service_client(service, start=False) as client:
        async with lifespan(service.app):
            request = asyncio.create_task(client.get("/v1/slow"))
            while "slow started" not in journal:
                await asyncio.sleep(0.01)
            assert service.state.inflight == 1
            asyncio.get_running_loop().call_later(0.2, release.set)
        response = await request
    assert response.status_code == 200
    assert journal == ["start database", "slow started", "slow finished", "stop database"]


async def test_draining_service_refuses_new_requests(make_service: Callable[..., Service]) -> None:
    service = make_service()
    async with service_client(service) as client:
        service.state.draining = True
        response = await client.get("/v1/anything")
        ready = await client.get("/health/ready")
        service.state.draining = False
    assert response.status_code == 503
    assert response.json()["code"] == "service-unavailable"
    assert response.headers["retry-after"] == "1"
    assert ready.status_code == 503
    assert ready.json()["checks"]["lifecycle"]["output"] == "shutting down"


async def test_drain_timeout_is_bounded(make_service: Callable[..., Service]) -> None:
    service = make_service(drain_timeout=0.1)

    @service.router.get("/v1/forever")
    async def forever() -> None:
        await asyncio.sleep(30)

    async with service_client(service, start=False) as client:
        with capture_logs() as logs:
            async with lifespan(service.app):
                request = asyncio.create_task(client.get("/v1/forever"))
                while service.state.inflight == 0:
                    await asyncio.sleep(0.01)
        request.cancel()
    assert logs.events("requests still in flight after the drain timeout")[0]["inflight"] == 1


def test_create_service_validates_the_name(make_service: Callable[..., Service]) -> None:
    for bad in ("", "Courses", "courses service", "courses_v2"):
        with pytest.raises(ValueError, match="lower-case"):
            make_service(name=bad)
